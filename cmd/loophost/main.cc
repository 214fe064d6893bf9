// loophost: parse the configuration, start the host, run until SIGTERM or
// SIGINT, stop every plugin gracefully, exit 0.
#include <grpc/grpc.h>

#include <csignal>
#include <cstdio>

#include "common/logging.h"
#include "common/process_tuning.h"
#include "host/builtin_loops.h"
#include "host/host_config.h"
#include "host/loop_host.h"

int main(int argc, char** argv) {
  using namespace loophost;
  // Block the stop signals before any thread starts, so only sigwait below sees
  // them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  DisableMutexDeadlockDetection();
  RaiseOpenFileLimit();  // plugins inherit it
  WarmCpuFrequency();
  // Held for the whole run, so gRPC does not shut down and restart its threads
  // each time the last channel of a plugin generation goes away.
  grpc_init();

  host::ParsedCommandLine parsed = host::ParseHostConfig(
      argc, argv, host::CurrentEnvironment(), host::BuiltinLoops());
  if (!parsed.run) {
    std::fputs(parsed.output.c_str(), parsed.exit_code == 0 ? stdout : stderr);
    return parsed.exit_code;
  }
  SetMinLogLevel(parsed.config.log_level);

  host::LoopHost loop_host(std::move(parsed.config));
  if (absl::Status status = loop_host.Start(); !status.ok()) {
    LogError("loophost failed to start",
             {{"error", std::string(status.message())}});
    return 1;
  }
  int signal = 0;
  sigwait(&stop_signals, &signal);
  LogInfo("stopping", {{"signal", strsignal(signal)}});
  loop_host.Stop();
  LogInfo("stopped");
  return 0;
}
