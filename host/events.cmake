# The event framework's host side: the durable EventStore (SQLite), the event
# router (source loops -> outbox), the delivery dispatcher (outbox -> transport
# loop) and the O-Cloud notification REST API.
find_package(SQLite3 REQUIRED)

lh_cc_library(NAME event_store
  SRCS event_store.cc wal_checkpointer.cc
  DEPS loophost::common SQLite::SQLite3 absl::status absl::statusor absl::strings
    absl::str_format absl::synchronization absl::time)

lh_cc_test(NAME event_store_test SRCS event_store_test.cc
  DEPS loophost::event_store loophost::testing SQLite::SQLite3 LABELS unit)
lh_cc_test(NAME wal_checkpointer_test SRCS wal_checkpointer_test.cc
  DEPS loophost::event_store loophost::testing SQLite::SQLite3 LABELS unit)

lh_cc_library(NAME event_framework
  SRCS event_metrics.cc event_router.cc delivery_dispatcher.cc rest_api.cc
    serving_changes.cc
  DEPS loophost::event_store loophost::events loophost::proto loophost::common
    loophost::operator_api
    prometheus-cpp::core absl::status absl::statusor absl::strings
    absl::synchronization absl::time)
target_link_libraries(loophost_event_framework PRIVATE PkgConfig::HTTPLIB
  nlohmann_json::nlohmann_json)

lh_cc_test(NAME serving_changes_test SRCS serving_changes_test.cc
  DEPS loophost::event_framework LABELS unit)
lh_cc_test(NAME event_router_test SRCS event_router_test.cc
  DEPS loophost::event_framework loophost::event_fakes loophost::testing
    SQLite::SQLite3 nlohmann_json::nlohmann_json LABELS unit)
lh_cc_test(NAME delivery_dispatcher_test SRCS delivery_dispatcher_test.cc
  DEPS loophost::event_framework loophost::event_fakes loophost::testing
  LABELS unit)
lh_cc_test(NAME rest_api_test SRCS rest_api_test.cc
  DEPS loophost::event_framework loophost::event_fakes loophost::testing
    PkgConfig::HTTPLIB nlohmann_json::nlohmann_json LABELS unit)

# LoopHost runs the event framework.
target_link_libraries(loophost_host PUBLIC loophost::event_framework)
lh_cc_test(NAME host_config_events_test SRCS host_config_events_test.cc
  DEPS loophost::host LABELS unit)
