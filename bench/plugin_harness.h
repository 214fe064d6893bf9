// PluginHarness: launches plugin children through loophost's own launch path
// (PosixProcessLauncher, OutputRelay + HandshakeWaiter, a channel made with
// PluginChannelArguments()) and times each step, for loophost-bench. The
// harness owns the launcher and relay threads and must outlive every
// LaunchedPlugin it returns. Not thread-safe: one bench thread drives it.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "host/output_relay.h"
#include "host/process_launcher.h"
#include "loophost/v1/echo.grpc.pb.h"

namespace loophost::bench {

using BenchClock = std::chrono::steady_clock;

inline double MillisSince(BenchClock::time_point t0) {
  return std::chrono::duration<double, std::milli>(BenchClock::now() - t0)
      .count();
}

struct HarnessOptions {
  std::string plugin_path;
  std::string socket_dir;  // PLUGIN_UNIX_SOCKET_DIR, mode 0700
  std::string loop_name = "example";
  // Added to (or replacing) the plugin env the host gives; for experiments.
  std::vector<std::pair<std::string, std::string>> extra_env;
  // Applied on top of PluginChannelArguments(): an all-digit value is an int
  // argument, anything else a string. For experiments.
  std::vector<std::pair<std::string, std::string>> channel_args;
  absl::Duration start_timeout = absl::Seconds(10);
  // Deadline of each measured Echo; zero = none (as the go-plugin peer).
  absl::Duration rpc_deadline = absl::Seconds(5);
  // Stop: destroy the channel as soon as the Shutdown RPC returned (as
  // go-plugin's client does), instead of after the child is reaped (as
  // loophost's supervisor does). For the experiment in README.md.
  bool close_channel_after_shutdown = false;
  // Connect the plugin's unix socket here and hand the fd to gRPC
  // (CreateCustomInsecureChannelFromFd) instead of letting a channel resolve
  // and dial "unix:PATH": no resolver, LB policy or subchannel, and no
  // reconnects (a plugin generation never needs one). For the experiment in
  // README.md.
  bool connect_fd = false;
  // The first call is grpc.health Check("plugin") instead of Echo, so any
  // go-plugin plugin (e.g. the peer's, which serves another Echo service) can
  // be launched through this path too.
  bool first_call_health = false;
  // Measured Echo calls: issue the call on a completion queue and poll it
  // without blocking for up to this long before blocking, so this thread (and
  // its vCPU) does not go idle while the answer is a few microseconds away.
  // Zero = the sync stub (what the host does). For the experiment in README.md.
  absl::Duration spin = absl::ZeroDuration();
};

// How far a launch got, in ms from just before Spawn().
struct LaunchTimes {
  double spawned_ms = 0;    // Spawn() returned: fork + exec done
  double handshake_ms = 0;  // the handshake line parsed
  double channel_ms = 0;    // CreateCustomChannel returned
  // CPU time the plugin had used when its handshake was parsed (all its
  // threads): its start-up work, independent of the machine's load.
  double plugin_cpu_to_handshake_ms = 0;
  double connected_ms = 0;   // host path only: WaitForConnected + health
  double first_call_ms = 0;  // the first Echo returned OK
};

class PluginHarness;

// One running plugin child and its channel. The destructor SIGKILLs and reaps
// a child that is still there, so no exit path leaks a process.
class LaunchedPlugin {
 public:
  ~LaunchedPlugin();
  LaunchedPlugin(const LaunchedPlugin&) = delete;
  LaunchedPlugin& operator=(const LaunchedPlugin&) = delete;

  int pid() const { return pid_; }

  // One Echo on the sync stub; checks the payload came back whole.
  absl::Status Echo(const std::string& payload);

  // The host's stop: GRPCController/Shutdown (1 s deadline), wait up to
  // `grace` for the exit, SIGKILL to the group, reap; falls back to
  // SIGTERM -> grace -> SIGKILL when the plugin does not exit. Returns how
  // it ended ("exited with code 0").
  std::string ShutdownAndReap(absl::Duration grace);

  // A crash: SIGKILL to the pid from outside. Returns ms until the pidfd
  // said the child is gone; then reaps as the supervisor does (SIGKILL the
  // group, reap, let stderr drain).
  double KillAndReap();

 private:
  friend class PluginHarness;
  explicit LaunchedPlugin(PluginHarness& harness) : harness_(harness) {}
  void Reap();
  void Unwatch();

  PluginHarness& harness_;
  host::ChildProcess child_;
  int pid_ = -1;
  uint64_t stdout_token_ = 0;
  uint64_t stderr_token_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Echo::Stub> echo_;
  grpc::CompletionQueue spin_cq_;  // for HarnessOptions::spin
};

class PluginHarness {
 public:
  explicit PluginHarness(HarnessOptions options);

  // Spawn -> handshake -> channel -> first Echo (wait_for_ready, start
  // timeout as deadline), as go-plugin's client does. With `host_path`, the
  // steps loophost's supervisor takes before it calls a plugin ready come
  // between channel and Echo: WaitForConnected, grpc.health Check
  // (wait_for_ready) and loophost.v1.Plugin/Describe.
  absl::StatusOr<std::unique_ptr<LaunchedPlugin>> Launch(
      LaunchTimes* times, bool host_path = false);

  const HarnessOptions& options() const { return options_; }

 private:
  friend class LaunchedPlugin;

  HarnessOptions options_;
  host::ProcessSpec spec_;
  grpc::ChannelArguments channel_args_;
  host::PosixProcessLauncher launcher_;
  host::OutputRelay relay_;
};

}  // namespace loophost::bench
