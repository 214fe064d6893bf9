# The process layer: spawning plugin children (fork/exec with parent-death
# signal), signalling/reaping them, the go-plugin handshake, the output relay
# and re-logging plugin output.
lh_cc_library(NAME process
  SRCS
    process_launcher.cc
    child_process_control.cc
    handshake.cc
    output_relay.cc
    plugin_log.cc
  DEPS
    loophost::common absl::status absl::statusor absl::strings absl::synchronization
    absl::time nlohmann_json::nlohmann_json Threads::Threads)

# Spawns a child through PosixProcessLauncher, prints its pid, then waits to be
# killed: lets process_launcher_test check the parent-death signal.
add_executable(process_launcher_test_helper process_launcher_test_helper.cc)
target_link_libraries(process_launcher_test_helper PRIVATE loophost::process lh_warnings)

lh_cc_test(NAME handshake_test SRCS handshake_test.cc DEPS loophost::process)
lh_cc_test(NAME process_launcher_test SRCS process_launcher_test.cc DEPS loophost::process)
target_compile_definitions(process_launcher_test PRIVATE
  LH_TEST_HELPER="$<TARGET_FILE:process_launcher_test_helper>")
add_dependencies(process_launcher_test process_launcher_test_helper)
lh_cc_test(NAME output_relay_test SRCS output_relay_test.cc DEPS loophost::process)
lh_cc_test(NAME plugin_log_test SRCS plugin_log_test.cc DEPS loophost::process)
