// Implementation of plugin_harness.h. The steps and their order follow
// host/plugin_instance.cc (ChildPluginInstance::Start/Stop/CollectExit) and
// host/plugin_supervisor.cc, so the times are the host's.
#include "bench/plugin_harness.h"

#include <fcntl.h>
#include <grpcpp/create_channel_posix.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "bench/proc_info.h"
#include "common/grpc_status.h"
#include "common/unique_fd.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "host/child_process_control.h"
#include "host/handshake.h"
#include "host/plugin_client.h"
#include "host/plugin_log.h"
#include "loophost/v1/plugin.grpc.pb.h"
#include "plugin/grpc_controller.grpc.pb.h"

namespace loophost::bench {
namespace {

// How long a dead plugin's last stderr lines get (as ChildPluginInstance).
constexpr absl::Duration kOutputDrainTimeout = absl::Milliseconds(200);
constexpr absl::Duration kShutdownRpcDeadline = absl::Seconds(1);

// The stdout handler's state; shared with the relay thread, which may call
// the handler until Unwatch returns.
struct StdoutState {
  explicit StdoutState(std::string plugin) : waiter(std::move(plugin)) {}
  host::HandshakeWaiter waiter;
  std::atomic<bool> handshake_done{false};
};

bool AllDigits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(c) && c != '-') return false;
  }
  return true;
}

// A connected, non-blocking, close-on-exec unix stream socket; gRPC owns it
// from CreateCustomInsecureChannelFromFd on.
absl::StatusOr<int> ConnectUnix(const std::string& path) {
  sockaddr_un address = {};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": path too long"));
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return absl::ErrnoToStatus(errno, "socket");
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address),
                sizeof(address)) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("connect ", path));
  }
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return absl::ErrnoToStatus(errno, "fcntl(O_NONBLOCK)");
  }
  return fd.Release();
}

}  // namespace

PluginHarness::PluginHarness(HarnessOptions options)
    : options_(std::move(options)),
      channel_args_(host::PluginChannelArguments()) {
  // The env loophost gives a plugin (plugin_config.cc BuildPluginEnv), less
  // the registry's LOOP_PROMETHEUS_PORT: the bench measures the gRPC path.
  std::vector<std::pair<std::string, std::string>> env = {
      {"LOOPHOST_PLUGIN_COOKIE", "d2a4c6e8-loophost-v1"},
      {"PLUGIN_PROTOCOL_VERSIONS", "1"},
      {"PLUGIN_UNIX_SOCKET_DIR", options_.socket_dir},
      {"LOOP_NAME", options_.loop_name},
      {"PATH", "/usr/local/bin:/usr/bin:/bin"},
  };
  for (const auto& [key, value] : options_.extra_env) {
    bool replaced = false;
    for (auto& [k, v] : env) {
      if (k == key) {
        v = value;
        replaced = true;
      }
    }
    if (!replaced) env.emplace_back(key, value);
  }
  spec_.path = options_.plugin_path;
  for (const auto& [key, value] : env) {
    spec_.env.push_back(absl::StrCat(key, "=", value));
  }
  for (const auto& [key, value] : options_.channel_args) {
    if (AllDigits(value)) {
      channel_args_.SetInt(key, std::stoi(value));
    } else {
      channel_args_.SetString(key, value);
    }
  }
}

absl::StatusOr<std::unique_ptr<LaunchedPlugin>> PluginHarness::Launch(
    LaunchTimes* times, bool host_path) {
  std::unique_ptr<LaunchedPlugin> plugin(new LaunchedPlugin(*this));
  const std::string name = options_.loop_name;
  auto stdout_state = std::make_shared<StdoutState>(name);
  const absl::Time deadline = absl::Now() + options_.start_timeout;

  const BenchClock::time_point t0 = BenchClock::now();
  absl::StatusOr<host::ChildProcess> child = launcher_.Spawn(spec_);
  if (!child.ok()) return child.status();
  times->spawned_ms = MillisSince(t0);
  plugin->child_ = std::move(*child);
  plugin->pid_ = plugin->child_.pid;
  plugin->stdout_token_ = relay_.Watch(
      std::move(plugin->child_.stdout_fd),
      [stdout_state, name](absl::string_view line) {
        if (stdout_state->handshake_done.load(std::memory_order_acquire)) {
          host::RelogPluginLine(name, "stdout", line);
        } else {
          stdout_state->waiter.OnStdoutLine(line);
        }
      });
  plugin->stderr_token_ = relay_.Watch(
      std::move(plugin->child_.stderr_fd), [name](absl::string_view line) {
        host::RelogPluginLine(name, "stderr", line);
      });

  absl::StatusOr<host::Handshake> handshake = stdout_state->waiter.Wait(
      plugin->child_.pidfd.get(), deadline - absl::Now());
  if (!handshake.ok()) {
    return absl::Status(
        handshake.status().code(),
        absl::StrCat("handshake: ", handshake.status().message()));
  }
  stdout_state->handshake_done.store(true, std::memory_order_release);
  times->handshake_ms = MillisSince(t0);
  times->plugin_cpu_to_handshake_ms =
      static_cast<double>(ProcCpuNs(plugin->pid_)) / 1e6;

  const std::string target = handshake->network == "unix"
                                 ? absl::StrCat("unix:", handshake->address)
                                 : handshake->address;
  if (options_.connect_fd && handshake->network == "unix") {
    absl::StatusOr<int> fd = ConnectUnix(handshake->address);
    if (!fd.ok()) return fd.status();
    plugin->channel_ =
        grpc::CreateCustomInsecureChannelFromFd(target, *fd, channel_args_);
  } else {
    plugin->channel_ = grpc::CreateCustomChannel(
        target, grpc::InsecureChannelCredentials(), channel_args_);
  }
  plugin->echo_ = v1::Echo::NewStub(plugin->channel_);
  times->channel_ms = MillisSince(t0);

  if (host_path) {
    // A channel made from an fd is connected already and is not a client
    // channel: gRPC asserts on connectivity-state calls on it.
    if (!options_.connect_fd &&
        !plugin->channel_->WaitForConnected(absl::ToChronoTime(deadline))) {
      return absl::DeadlineExceededError(
          absl::StrCat("dial: could not connect to ", target));
    }
    auto health = grpc::health::v1::Health::NewStub(plugin->channel_);
    grpc::ClientContext health_context;
    health_context.set_deadline(absl::ToChronoTime(deadline));
    health_context.set_wait_for_ready(true);
    grpc::health::v1::HealthCheckRequest health_request;
    health_request.set_service(host::kPluginHealthService);
    grpc::health::v1::HealthCheckResponse health_response;
    if (grpc::Status s =
            health->Check(&health_context, health_request, &health_response);
        !s.ok()) {
      return ToAbslStatus(s, "Health/Check");
    }
    auto describe = v1::Plugin::NewStub(plugin->channel_);
    grpc::ClientContext describe_context;
    describe_context.set_deadline(absl::ToChronoTime(deadline));
    v1::DescribeRequest describe_request;
    v1::DescribeResponse describe_response;
    if (grpc::Status s = describe->Describe(&describe_context, describe_request,
                                            &describe_response);
        !s.ok()) {
      return ToAbslStatus(s, "Plugin/Describe");
    }
    times->connected_ms = MillisSince(t0);
  }

  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(deadline));
  context.set_wait_for_ready(true);
  if (options_.first_call_health) {
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(host::kPluginHealthService);
    grpc::health::v1::HealthCheckResponse response;
    if (grpc::Status s = grpc::health::v1::Health::NewStub(plugin->channel_)
                             ->Check(&context, request, &response);
        !s.ok()) {
      return ToAbslStatus(s, "first Health/Check");
    }
  } else {
    v1::EchoRequest request;
    request.set_payload("first");
    v1::EchoResponse response;
    if (grpc::Status s = plugin->echo_->Echo(&context, request, &response);
        !s.ok()) {
      return ToAbslStatus(s, "first Echo");
    }
  }
  times->first_call_ms = MillisSince(t0);
  return plugin;
}

LaunchedPlugin::~LaunchedPlugin() {
  spin_cq_.Shutdown();
  void* tag = nullptr;
  bool ok = false;
  while (spin_cq_.Next(&tag, &ok)) {
  }
  if (child_.pid > 0) {
    (void)host::SignalProcessGroup(child_, SIGKILL);
    host::WaitForExit(child_, absl::Seconds(5));
    Reap();
  }
  Unwatch();
}

absl::Status LaunchedPlugin::Echo(const std::string& payload) {
  grpc::ClientContext context;
  const absl::Duration deadline = harness_.options_.rpc_deadline;
  if (deadline > absl::ZeroDuration()) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  }
  v1::EchoRequest request;
  request.set_payload(payload);
  v1::EchoResponse response;
  grpc::Status status;
  const absl::Duration spin = harness_.options_.spin;
  if (spin > absl::ZeroDuration()) {
    auto call = echo_->AsyncEcho(&context, request, &spin_cq_);
    call->Finish(&response, &status, this);
    void* tag = nullptr;
    bool ok = false;
    const absl::Time spin_until = absl::Now() + spin;
    grpc::CompletionQueue::NextStatus next = grpc::CompletionQueue::TIMEOUT;
    while (next == grpc::CompletionQueue::TIMEOUT && absl::Now() < spin_until) {
      next = spin_cq_.AsyncNext(&tag, &ok, gpr_time_0(GPR_CLOCK_MONOTONIC));
      // A peer that shares this CPU gets it at once.
      if (next == grpc::CompletionQueue::TIMEOUT) std::this_thread::yield();
    }
    if (next == grpc::CompletionQueue::TIMEOUT && !spin_cq_.Next(&tag, &ok)) {
      return absl::InternalError("Echo: completion queue shut down");
    }
  } else {
    status = echo_->Echo(&context, request, &response);
  }
  if (!status.ok()) return ToAbslStatus(status, "Echo");
  if (response.payload().size() != payload.size()) {
    return absl::DataLossError(absl::StrCat("Echo: sent ", payload.size(),
                                            " bytes, got ",
                                            response.payload().size()));
  }
  return absl::OkStatus();
}

void LaunchedPlugin::Reap() {
  host::ReapChild(child_);
  // The last lines a dying plugin wrote explain its death (as the host).
  if (stderr_token_ != 0) {
    harness_.relay_.WaitForEof(stderr_token_, kOutputDrainTimeout);
  }
}

void LaunchedPlugin::Unwatch() {
  if (stdout_token_ != 0) harness_.relay_.Unwatch(stdout_token_);
  if (stderr_token_ != 0) harness_.relay_.Unwatch(stderr_token_);
  stdout_token_ = stderr_token_ = 0;
}

std::string LaunchedPlugin::ShutdownAndReap(absl::Duration grace) {
  std::string how;
  {
    auto controller = ::plugin::GRPCController::NewStub(channel_);
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + kShutdownRpcDeadline));
    ::plugin::Empty request;
    ::plugin::Empty response;
    grpc::Status status = controller->Shutdown(&context, request, &response);
    if (!status.ok()) {
      how = absl::StrCat("Shutdown RPC: ", status.error_message(), "; ");
    }
  }
  if (harness_.options_.close_channel_after_shutdown) {
    echo_.reset();
    channel_.reset();
  }
  if (host::WaitForExit(child_, grace)) {
    (void)host::SignalProcessGroup(child_, SIGKILL);
    absl::StrAppend(&how, host::ReapChild(child_));
  } else {
    absl::StrAppend(&how, "no exit after Shutdown; ",
                    host::TerminateChild(child_, grace));
  }
  if (stderr_token_ != 0) {
    harness_.relay_.WaitForEof(stderr_token_, kOutputDrainTimeout);
  }
  echo_.reset();
  channel_.reset();
  Unwatch();
  return how;
}

double LaunchedPlugin::KillAndReap() {
  const BenchClock::time_point t0 = BenchClock::now();
  ::kill(pid_, SIGKILL);
  pollfd fd = {child_.pidfd.get(), POLLIN, 0};
  while (::poll(&fd, 1, 5000) < 0 && errno == EINTR) {
  }
  const double seen_ms = MillisSince(t0);
  (void)host::SignalProcessGroup(child_, SIGKILL);  // as CollectExit
  Reap();
  echo_.reset();
  channel_.reset();
  Unwatch();
  return seen_ms;
}

}  // namespace loophost::bench
