// Implementation of LoopHost (loop_host.h).
#include "host/loop_host.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace loophost::host {
namespace {

// sun_path holds 108 bytes; leave room for the plugin's own file name.
constexpr size_t kMaxSocketDirLength = 70;

absl::Status MakeDir(const std::string& path, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec)
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": ", ec.message()));
  if (::chmod(path.c_str(), mode) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": chmod: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

LoopHost::LoopHost(HostConfig config)
    : config_(std::move(config)),
      host_env_(CurrentEnvironment()),
      registry_(registry::LoopRegistryOptions{
          config_.prometheus_ports,
          registry::LoopRegistryOptions::DefaultPortLockDir()}) {}

LoopHost::~LoopHost() { Stop(); }

std::string LoopHost::StateDir() const {
  std::error_code ec;
  return std::filesystem::absolute(config_.state_dir, ec)
      .lexically_normal()
      .string();
}

absl::StatusOr<std::string> LoopHost::PrepareSocketDir() {
  std::string state_dir = StateDir();
  LH_RETURN_IF_ERROR(MakeDir(state_dir, 0700));
  std::string dir = state_dir + "/sockets";
  if (dir.size() <= kMaxSocketDirLength) {
    LH_RETURN_IF_ERROR(MakeDir(dir, 0700));
    return dir;
  }
  // A deep state dir cannot hold unix sockets; use a private temp dir instead.
  std::string tmpl = "/tmp/loophost-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("mkdtemp ", tmpl, ": ", std::strerror(errno)));
  }
  return tmpl;
}

std::unique_ptr<PluginSupervisor> LoopHost::MakeSupervisor(
    const PluginConfig& plugin, const registry::RegisteredLoop& loop,
    const std::string& socket_dir) {
  PluginEnvContext context{config_.node_name,
                           std::string(LogLevelName(config_.log_level)),
                           socket_dir, StateDir() + "/loops/" + plugin.name};
  for (char& c : context.log_level) c = static_cast<char>(std::tolower(c));
  EnvMap env = BuildPluginEnv(plugin, loop.env, host_env_, context);

  PluginSupervisor::InstanceFactory factory;
  if (plugin.command.empty()) {
    factory = [name = plugin.name, loop_factory = plugin.in_process_factory,
               env] {
      return std::make_unique<InProcessPluginInstance>(name, loop_factory, env);
    };
  } else {
    ProcessSpec spec;
    spec.path = plugin.command;
    spec.argv = {plugin.command};
    for (const auto& [key, value] : env)
      spec.env.push_back(absl::StrCat(key, "=", value));
    factory = [this, name = plugin.name, spec] {
      return std::make_unique<ChildPluginInstance>(name, spec, launcher_,
                                                   relay_);
    };
  }
  auto supervisor = std::make_unique<PluginSupervisor>(
      PluginSupervisor::Identity{plugin.name, plugin.command,
                                 loop.prometheus_port},
      std::move(factory), config_.supervisor, metrics_);
  supervisor->SetOnServingChange([this] { serving_changes_.Notify(); });
  return supervisor;
}

absl::Status LoopHost::StartEvents() {
  const EventConfig& e = config_.events;
  const std::string db = StateDir() + "/events.db";
  LH_ASSIGN_OR_RETURN(event_store_, EventStore::Open(db));
  event_metrics_ = std::make_unique<EventMetrics>(metrics_.registry());

  DeliveryDispatcherOptions delivery;
  delivery.transport_plugin = e.transport_plugin;
  delivery.retention_age = e.retention_age;
  delivery.retention_rows = e.retention_events;
  delivery.remove_after_failures = e.remove_after_failures;
  delivery.backoff_max = e.backoff_max;
  delivery.subscription_window = e.delivery_window;
  dispatcher_ = std::make_unique<DeliveryDispatcher>(delivery, *event_store_,
                                                     *this, *event_metrics_);

  EventRouterOptions routing;
  routing.dedup_window = e.dedup_window;
  routing.api_base = e.external_base;
  router_ = std::make_unique<EventRouter>(
      routing, *event_store_, *this, *event_metrics_,
      [dispatcher = dispatcher_.get()](const std::vector<std::string>& ids) {
        dispatcher->Notify(ids);
      });

  RestApiOptions api;
  api.listen = e.api_addr;
  api.external_base = e.external_base;
  api.transport_plugin = e.transport_plugin;
  rest_api_ = std::make_unique<RestApi>(api, *event_store_, *this, *router_,
                                        *event_metrics_);

  bool transport_enabled = false;
  for (const PluginConfig& plugin : config_.plugins) {
    transport_enabled |= plugin.name == e.transport_plugin;
  }
  if (!transport_enabled) {
    LogWarn("the transport plugin is not enabled: events wait in the outbox",
            {{"transport", e.transport_plugin},
             {"TRANSPORT_HOST", e.transport_host}});
  }
  LogInfo("event store open",
          {{"path", db},
           {"subscriptions",
            absl::StrCat(event_store_->ListSubscriptions().size())},
           {"undelivered", absl::StrCat(event_store_->OutboxDepth())}});
  return absl::OkStatus();
}

absl::Status LoopHost::Start() {
  LH_ASSIGN_OR_RETURN(std::string socket_dir, PrepareSocketDir());
  LH_RETURN_IF_ERROR(StartEvents());
  for (const PluginConfig& plugin : config_.plugins) {
    LH_ASSIGN_OR_RETURN(registry::RegisteredLoop loop,
                        registry_.Register(plugin.name));
    LH_RETURN_IF_ERROR(MakeDir(StateDir() + "/loops/" + plugin.name, 0700));
    supervisors_.push_back(MakeSupervisor(plugin, loop, socket_dir));
    LogInfo("plugin registered",
            {{"plugin", plugin.name},
             {"mode", plugin.command.empty() ? "in-process" : plugin.command},
             {"prometheus_port", absl::StrCat(loop.prometheus_port)}});
  }
  // After supervisors_ is complete (handlers read it), before any plugin runs.
  LH_RETURN_IF_ERROR(rest_api_->Start());
  OperatorServerOptions options;
  options.listen = config_.metrics_addr;
  options.node_name = config_.node_name;
  operator_server_ = std::make_unique<OperatorServer>(options, *this, metrics_);
  LH_RETURN_IF_ERROR(operator_server_->Start());
  for (auto& supervisor : supervisors_) supervisor->Start();
  dispatcher_->Start();
  router_->Start();
  LogInfo("loophost started",
          {{"node", config_.node_name},
           {"metrics",
            absl::StrCat(config_.metrics_addr.host, ":", metrics_port())},
           {"api", absl::StrCat(config_.events.api_addr.host, ":", api_port())},
           {"plugins", absl::StrCat(supervisors_.size())}});
  return absl::OkStatus();
}

void LoopHost::Stop() {
  if (stopped_) return;
  stopped_ = true;
  // Intake first (no new subscriptions or events), then what is in flight
  // settles into the outbox while the plugins still run.
  if (rest_api_) rest_api_->Stop();
  if (router_) router_->Stop();
  if (dispatcher_) dispatcher_->Stop();
  // Plugins stop in parallel: each supervisor's Stop sends Shutdown and waits
  // its grace.
  std::vector<std::thread> stoppers;
  for (auto& supervisor : supervisors_)
    stoppers.emplace_back([&supervisor] { supervisor->Stop(); });
  for (auto& t : stoppers) t.join();
  if (operator_server_) operator_server_->Stop();
  for (const auto& loop : registry_.List())
    (void)registry_.Unregister(loop.name);
  rest_api_.reset();
  router_.reset();
  dispatcher_.reset();
  event_store_.reset();
}

uint16_t LoopHost::metrics_port() const {
  return operator_server_ ? operator_server_->port() : 0;
}

uint16_t LoopHost::api_port() const {
  return rest_api_ ? rest_api_->port() : 0;
}

std::vector<ServingPlugin> LoopHost::ServingWithKind(
    absl::string_view kind) const {
  std::vector<ServingPlugin> out;
  for (const auto& supervisor : supervisors_) {
    const PluginStatus status = supervisor->Status();
    if (std::find(status.kinds.begin(), status.kinds.end(), kind) ==
        status.kinds.end()) {
      continue;
    }
    if (std::shared_ptr<PluginClient> client = supervisor->Client()) {
      out.push_back({status.name, client->channel(), client});
    }
  }
  return out;
}

std::optional<ServingPlugin> LoopHost::ServingNamed(
    absl::string_view name) const {
  for (const auto& supervisor : supervisors_) {
    const PluginStatus status = supervisor->Status();
    if (status.name != name) continue;
    std::shared_ptr<PluginClient> client = supervisor->Client();
    if (client == nullptr) return std::nullopt;
    return ServingPlugin{status.name, client->channel(), client};
  }
  return std::nullopt;
}

std::unique_ptr<ServingChanges::Subscription> LoopHost::WatchServing(
    std::function<void()> on_change) const {
  return serving_changes_.Subscribe(std::move(on_change));
}

std::vector<PluginStatus> LoopHost::ListPlugins() const {
  std::vector<PluginStatus> out;
  out.reserve(supervisors_.size());
  for (const auto& supervisor : supervisors_)
    out.push_back(supervisor->Status());
  return out;
}

bool LoopHost::WaitUntilAllServing(absl::Time deadline) const {
  for (const auto& supervisor : supervisors_) {
    if (!supervisor->WaitUntilServing(deadline)) return false;
  }
  return true;
}

}  // namespace loophost::host
