// PluginInstance: one generation of a plugin, from start to stop. Two
// mechanisms: ChildPluginInstance (a child process: spawn, go-plugin handshake,
// dial its unix socket) and InProcessPluginInstance (the loop's LoopServer
// inside the host, on an in-process channel). The supervisor drives either the
// same way. Used from one thread at a time.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "host/handshake.h"
#include "host/output_relay.h"
#include "host/plugin_config.h"
#include "host/process_launcher.h"
#include "loops/sdk/loop_server.h"

namespace loophost::host {

class PluginInstance {
 public:
  virtual ~PluginInstance() = default;

  // Starts the generation and returns a channel to it. Errors name the step
  // that failed
  // ("spawn: ...", "handshake: ...", "dial: ..."); the caller then calls
  // Kill().
  virtual absl::StatusOr<std::shared_ptr<grpc::Channel>> Start(
      absl::Time deadline) = 0;
  virtual int pid() const { return 0; }
  // A descriptor that becomes readable when the generation dies on its own; -1
  // if it cannot.
  virtual int exit_fd() const { return -1; }
  // After exit_fd() became readable: reaps and describes the exit ("killed by
  // signal 9").
  virtual std::string CollectExit() { return "exited"; }
  // Waits up to `grace` for the generation to end after a Shutdown request,
  // then forces it.
  virtual std::string Stop(absl::Duration grace) = 0;
  // Ends the generation at once (SIGKILL to a child's process group).
  virtual std::string Kill() = 0;
};

class ChildPluginInstance : public PluginInstance {
 public:
  ChildPluginInstance(std::string plugin, ProcessSpec spec,
                      ProcessLauncher& launcher, OutputRelay& relay);
  ~ChildPluginInstance() override;

  absl::StatusOr<std::shared_ptr<grpc::Channel>> Start(
      absl::Time deadline) override;
  int pid() const override { return child_.pid; }
  int exit_fd() const override { return child_.pidfd.get(); }
  std::string CollectExit() override;
  std::string Stop(absl::Duration grace) override;
  std::string Kill() override;

 private:
  // Stdout lines go to the handshake waiter until the handshake, then to the
  // log.
  struct StdoutState {
    explicit StdoutState(std::string plugin) : waiter(std::move(plugin)) {}
    HandshakeWaiter waiter;
    std::atomic<bool> handshake_done{false};
  };
  std::string Finish(
      std::string description);  // lets the last output lines drain

  const std::string plugin_;
  const ProcessSpec spec_;
  ProcessLauncher& launcher_;
  OutputRelay& relay_;
  ChildProcess child_;
  bool reaped_ = false;
  std::string exit_description_;
  uint64_t stdout_token_ = 0;
  uint64_t stderr_token_ = 0;
};

class InProcessPluginInstance : public PluginInstance {
 public:
  InProcessPluginInstance(std::string plugin, LoopFactory factory,
                          sdk::LoopEnv env);
  ~InProcessPluginInstance() override;

  absl::StatusOr<std::shared_ptr<grpc::Channel>> Start(
      absl::Time deadline) override;
  std::string Stop(absl::Duration grace) override;
  std::string Kill() override;

 private:
  const std::string plugin_;
  LoopFactory factory_;
  sdk::LoopEnv env_;
  std::unique_ptr<sdk::LoopServer> server_;
};

}  // namespace loophost::host
