// LoopHost: the whole host process minus main(). Owns the registry, the process
// launcher, the output relay, one PluginSupervisor per enabled plugin, the
// operator endpoints and the event framework (EventStore, EventRouter,
// DeliveryDispatcher, REST API). Start() brings them up in that order; Stop()
// first stops event intake (REST API, router), lets deliveries in flight
// settle into the outbox, then takes the rest down in reverse, every plugin
// stopped gracefully and reaped. Status is thread-safe; Start/Stop from one
// thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "host/delivery_dispatcher.h"
#include "host/event_metrics.h"
#include "host/event_router.h"
#include "host/event_store.h"
#include "host/host_config.h"
#include "host/host_metrics.h"
#include "host/operator_server.h"
#include "host/output_relay.h"
#include "host/plugin_status.h"
#include "host/plugin_supervisor.h"
#include "host/process_launcher.h"
#include "host/rest_api.h"
#include "host/role_plugins.h"
#include "registry/loop_registry.h"

namespace loophost::host {

class LoopHost : public PluginDirectory, public RolePlugins {
 public:
  explicit LoopHost(HostConfig config);
  ~LoopHost() override;  // Stop()

  // Creates the state dir, registers every plugin, starts their supervisors and
  // serves the operator endpoints. An error (state dir, ports, listen address)
  // is for the operator.
  absl::Status Start();
  void Stop();

  uint16_t metrics_port() const;
  uint16_t api_port() const;
  std::vector<PluginStatus> ListPlugins() const override;
  std::vector<ServingPlugin> ServingWithKind(
      absl::string_view kind) const override;
  std::optional<ServingPlugin> ServingNamed(
      absl::string_view name) const override;
  std::unique_ptr<ServingChanges::Subscription> WatchServing(
      std::function<void()> on_change) const override;
  // Blocks until every plugin serves or the deadline passes.
  bool WaitUntilAllServing(absl::Time deadline) const;

 private:
  std::string StateDir() const;  // absolute LOOPHOST_STATE_DIR
  absl::StatusOr<std::string> PrepareSocketDir();
  absl::Status StartEvents();
  std::unique_ptr<PluginSupervisor> MakeSupervisor(
      const PluginConfig& plugin, const registry::RegisteredLoop& loop,
      const std::string& socket_dir);

  const HostConfig config_;
  const EnvMap host_env_;
  HostMetrics metrics_;
  registry::LoopRegistry registry_;
  PosixProcessLauncher launcher_;
  OutputRelay relay_;
  // Before the supervisors (which notify it) and the event parts (which
  // subscribe), so it outlives both.
  mutable ServingChanges serving_changes_;
  std::vector<std::unique_ptr<PluginSupervisor>>
      supervisors_;  // sorted by name
  std::unique_ptr<OperatorServer> operator_server_;
  // The event framework; the store outlives the parts that use it.
  std::unique_ptr<EventStore> event_store_;
  std::unique_ptr<EventMetrics> event_metrics_;
  std::unique_ptr<DeliveryDispatcher> dispatcher_;
  std::unique_ptr<EventRouter> router_;
  std::unique_ptr<RestApi> rest_api_;
  bool stopped_ = false;
};

}  // namespace loophost::host
