// Implementation of the child-process and in-process plugin generations
// (plugin_instance.h).
#include "host/plugin_instance.h"

#include <grpcpp/create_channel_posix.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "host/child_process_control.h"
#include "host/plugin_client.h"
#include "host/plugin_log.h"

namespace loophost::host {
namespace {

// How long a dead plugin's last output lines get to reach the log.
constexpr absl::Duration kOutputDrainTimeout = absl::Milliseconds(200);

absl::StatusOr<UniqueFd> ConnectUnixSocket(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": longer than a unix socket path can be"));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid() ||
      ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr),
                sizeof(addr)) != 0) {
    return absl::UnavailableError(
        absl::StrCat("connect ", path, ": ", std::strerror(errno)));
  }
  return fd;
}

absl::Status Step(absl::string_view step, const absl::Status& status) {
  return absl::Status(status.code(),
                      absl::StrCat(step, ": ", status.message()));
}

}  // namespace

ChildPluginInstance::ChildPluginInstance(std::string plugin, ProcessSpec spec,
                                         ProcessLauncher& launcher,
                                         OutputRelay& relay)
    : plugin_(std::move(plugin)),
      spec_(std::move(spec)),
      launcher_(launcher),
      relay_(relay) {}

ChildPluginInstance::~ChildPluginInstance() {
  if (child_.pid > 0 && !reaped_) Kill();
  if (stdout_token_ != 0) relay_.Unwatch(stdout_token_);
  if (stderr_token_ != 0) relay_.Unwatch(stderr_token_);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> ChildPluginInstance::Start(
    absl::Time deadline) {
  auto child = launcher_.Spawn(spec_);
  if (!child.ok()) return Step("spawn", child.status());
  child_ = std::move(*child);

  auto stdout_state = std::make_shared<StdoutState>(plugin_);
  stdout_token_ = relay_.Watch(
      std::move(child_.stdout_fd),
      [stdout_state, plugin = plugin_](absl::string_view line) {
        if (stdout_state->handshake_done.load(std::memory_order_acquire)) {
          RelogPluginLine(plugin, "stdout", line);
        } else {
          stdout_state->waiter.OnStdoutLine(line);
        }
      });
  stderr_token_ = relay_.Watch(std::move(child_.stderr_fd),
                               [plugin = plugin_](absl::string_view line) {
                                 RelogPluginLine(plugin, "stderr", line);
                               });

  auto handshake =
      stdout_state->waiter.Wait(child_.pidfd.get(), deadline - absl::Now());
  if (!handshake.ok()) return Step("handshake", handshake.status());
  stdout_state->handshake_done.store(true, std::memory_order_release);

  if (handshake->network == "unix") {
    // Connect the socket ourselves and hand it to gRPC: skips the resolver, the
    // LB policy and the subchannel (bench/README.md finding 2c). A generation
    // never reconnects: a broken connection means a new generation.
    auto fd = ConnectUnixSocket(handshake->address);
    if (!fd.ok()) return Step("dial", fd.status());
    return grpc::CreateCustomInsecureChannelFromFd(
        absl::StrCat("unix:", handshake->address), fd->Release(),
        PluginChannelArguments());
  }
  const std::string& target = handshake->address;
  auto channel = grpc::CreateCustomChannel(
      target, grpc::InsecureChannelCredentials(), PluginChannelArguments());
  if (!channel->WaitForConnected(absl::ToChronoTime(deadline))) {
    return absl::DeadlineExceededError(absl::StrCat(
        "dial: could not connect to ", target, " before the start timeout"));
  }
  return channel;
}

std::string ChildPluginInstance::Finish(std::string description) {
  reaped_ = true;
  exit_description_ = std::move(description);
  // The last lines a dying plugin wrote explain its death; let them reach the
  // log first.
  if (stderr_token_ != 0) relay_.WaitForEof(stderr_token_, kOutputDrainTimeout);
  return exit_description_;
}

std::string ChildPluginInstance::CollectExit() {
  if (reaped_) return exit_description_;
  // The leader is gone; take anything it left in its process group with it.
  (void)SignalProcessGroup(child_, SIGKILL);
  return Finish(ReapChild(child_));
}

std::string ChildPluginInstance::Stop(absl::Duration grace) {
  if (child_.pid <= 0 || reaped_) return exit_description_;
  if (WaitForExit(child_, grace)) {
    (void)SignalProcessGroup(child_, SIGKILL);
    return Finish(ReapChild(child_));
  }
  return Finish(TerminateChild(child_, grace));
}

std::string ChildPluginInstance::Kill() {
  if (child_.pid <= 0 || reaped_) return exit_description_;
  (void)SignalProcessGroup(child_, SIGKILL);
  WaitForExit(child_, absl::Seconds(5));
  return Finish(ReapChild(child_));
}

InProcessPluginInstance::InProcessPluginInstance(std::string plugin,
                                                 LoopFactory factory,
                                                 sdk::LoopEnv env)
    : plugin_(std::move(plugin)),
      factory_(std::move(factory)),
      env_(std::move(env)) {}

InProcessPluginInstance::~InProcessPluginInstance() { Kill(); }

absl::StatusOr<std::shared_ptr<grpc::Channel>> InProcessPluginInstance::Start(
    absl::Time /*deadline*/) {
  auto server = sdk::LoopServer::StartInProcess(factory_(), env_);
  if (!server.ok()) return Step("start in-process", server.status());
  server_ = std::move(*server);
  return server_->InProcessChannel();
}

std::string InProcessPluginInstance::Stop(absl::Duration /*grace*/) {
  return Kill();
}

std::string InProcessPluginInstance::Kill() {
  if (server_ == nullptr) return "stopped";
  server_->RequestShutdown();
  server_->Wait();
  server_.reset();
  return "stopped";
}

}  // namespace loophost::host
