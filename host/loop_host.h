// LoopHost: the whole host process minus main(). Owns the registry, the process
// launcher, the output relay, one PluginSupervisor per enabled plugin and the
// operator endpoints. Start() brings them up in that order; Stop() takes them
// down in reverse, every plugin stopped gracefully and reaped. Status is
// thread-safe; Start/Stop from one thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "host/host_config.h"
#include "host/host_metrics.h"
#include "host/operator_server.h"
#include "host/output_relay.h"
#include "host/plugin_status.h"
#include "host/plugin_supervisor.h"
#include "host/process_launcher.h"
#include "registry/loop_registry.h"

namespace loophost::host {

class LoopHost : public PluginDirectory {
 public:
  explicit LoopHost(HostConfig config);
  ~LoopHost() override;  // Stop()

  // Creates the state dir, registers every plugin, starts their supervisors and
  // serves the operator endpoints. An error (state dir, ports, listen address)
  // is for the operator.
  absl::Status Start();
  void Stop();

  uint16_t metrics_port() const;
  std::vector<PluginStatus> ListPlugins() const override;
  // Blocks until every plugin serves or the deadline passes.
  bool WaitUntilAllServing(absl::Time deadline) const;

 private:
  std::string StateDir() const;  // absolute LOOPHOST_STATE_DIR
  absl::StatusOr<std::string> PrepareSocketDir();
  std::unique_ptr<PluginSupervisor> MakeSupervisor(
      const PluginConfig& plugin, const registry::RegisteredLoop& loop,
      const std::string& socket_dir);

  const HostConfig config_;
  const EnvMap host_env_;
  HostMetrics metrics_;
  registry::LoopRegistry registry_;
  PosixProcessLauncher launcher_;
  OutputRelay relay_;
  std::vector<std::unique_ptr<PluginSupervisor>>
      supervisors_;  // sorted by name
  std::unique_ptr<OperatorServer> operator_server_;
  bool stopped_ = false;
};

}  // namespace loophost::host
