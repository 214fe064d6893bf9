# Plugin supervision and the host assembly: plugin config and env, instances, supervisor,
# host config, LoopHost.
lh_cc_library(NAME host
  SRCS
    plugin_config.cc
    plugin_client.cc
    plugin_instance.cc
    plugin_supervisor.cc
    host_config.cc
    builtin_loops.cc
    loop_host.cc
  DEPS
    loophost::process loophost::operator_api loophost::registry loophost::sdk loophost::example
    loophost::http_transport loophost::ptp
    loophost::proto loophost::common CLI11::CLI11 absl::synchronization)
lh_cc_test(NAME plugin_config_test SRCS plugin_config_test.cc DEPS loophost::host)
lh_cc_test(NAME plugin_supervisor_test SRCS plugin_supervisor_test.cc DEPS loophost::host)
