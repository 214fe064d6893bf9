# Operator interface: the host's own metrics (HostMetrics), the Prometheus exposition
# merger, and the operator endpoints (OperatorServer) on LOOPHOST_METRICS_ADDR.
lh_cc_library(NAME operator_api
  SRCS host_metrics.cc exposition_merge.cc operator_server.cc plugin_status.cc
    http_listener.cc
  DEPS loophost::common prometheus-cpp::core absl::status absl::statusor absl::strings
    absl::synchronization absl::time)
target_link_libraries(loophost_operator_api PRIVATE PkgConfig::HTTPLIB nlohmann_json::nlohmann_json)

lh_cc_test(NAME exposition_merge_test SRCS exposition_merge_test.cc DEPS loophost::operator_api)
lh_cc_test(NAME host_metrics_test SRCS host_metrics_test.cc DEPS loophost::operator_api)

# promtool (Debian package prometheus) lints the merged /metrics when it is installed.
find_program(LH_PROMTOOL promtool)
lh_cc_test(NAME operator_server_test SRCS operator_server_test.cc
  DEPS loophost::operator_api prometheus-cpp::pull PkgConfig::HTTPLIB nlohmann_json::nlohmann_json)
if(LH_PROMTOOL)
  target_compile_definitions(operator_server_test PRIVATE LH_PROMTOOL="${LH_PROMTOOL}")
endif()
