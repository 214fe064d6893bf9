// LoopServer: serves one Loop over gRPC, the same way whether the loop runs in
// its own process (a unix socket, see serve.h) or inside the host (an
// in-process channel). It owns the loop, its HealthChecks and its Prometheus
// registry, and serves:
//   - grpc.health.v1.Health: services "plugin" and "" SERVING while running;
//   - plugin.GRPCController/Shutdown: answers, then shuts the server down;
//   - loophost.v1.Plugin: Describe, HealthReport, and WatchHealth (the current
//     report at once, then one message per change; ends at shutdown);
//   - the loop's own services;
//   - Prometheus text on 127.0.0.1:$LOOP_PROMETHEUS_PORT/metrics (if set, !=
//   0).
// Thread-safe: RequestShutdown and Wait may be called from any thread.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/server.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "loops/sdk/health_checks.h"
#include "loops/sdk/loop.h"

namespace loophost::sdk {

class PluginService;
class ControllerService;
class HealthWatchers;

struct LoopServerOptions {
  // Where the Prometheus exposer listens, overriding LOOP_PROMETHEUS_PORT.
  // Tests pass "127.0.0.1:0" and read LoopServer::metrics_port().
  std::string metrics_address;
};

class LoopServer {
 public:
  // In-process mode: no listening socket; talk to it through
  // InProcessChannel().
  static absl::StatusOr<std::unique_ptr<LoopServer>> StartInProcess(
      std::unique_ptr<Loop> loop, LoopEnv env,
      const LoopServerOptions& options = {});

  // Child mode: listens on unix:<socket_path>.
  static absl::StatusOr<std::unique_ptr<LoopServer>> StartOnUnixSocket(
      std::unique_ptr<Loop> loop, LoopEnv env, const std::string& socket_path,
      const LoopServerOptions& options = {});

  LoopServer(const LoopServer&) = delete;
  LoopServer& operator=(const LoopServer&) = delete;
  // RequestShutdown() + Wait().
  ~LoopServer();

  // A new channel to this server (either mode), without a network hop.
  // Only use it while the server runs: in gRPC 1.51 a call started over an
  // in-process channel after Wait() stopped the server crashes the process
  // (inproc transport). Drop every stub before the LoopServer stops.
  std::shared_ptr<grpc::Channel> InProcessChannel();

  // Idempotent; what GRPCController.Shutdown calls. Does not block.
  void RequestShutdown();
  bool shutdown_requested() const;

  // Blocks until shutdown was requested, then stops the server (in-flight
  // calls get ~1 s), calls Loop::Stop and takes the exposer down. Returns at
  // once when that already happened.
  void Wait();

  // The exposer's port, 0 when there is no exposer.
  int metrics_port() const;

  HealthChecks& health() { return health_; }
  prometheus::Registry& metrics() { return *registry_; }

 private:
  LoopServer(std::unique_ptr<Loop> loop, LoopEnv env);
  absl::Status Init(const std::string& socket_path,
                    const LoopServerOptions& options);
  // Broadcasts every health change after version `seen` until Cancel().
  void WatchHealthChanges(uint64_t seen);
  void Stop();

  std::unique_ptr<Loop> loop_;
  const LoopEnv env_;
  HealthChecks health_;
  std::shared_ptr<prometheus::Registry> registry_;
  LoopContext context_;

  std::unique_ptr<HealthWatchers> watchers_;
  std::unique_ptr<PluginService> plugin_service_;
  std::unique_ptr<ControllerService> controller_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::thread health_thread_;
  bool loop_started_ = false;

  mutable absl::Mutex mu_;
  bool shutdown_requested_ ABSL_GUARDED_BY(mu_) = false;
  // Held for the whole of Stop(), so a second Wait() returns only after it.
  absl::Mutex stop_mu_;
  bool stopped_ ABSL_GUARDED_BY(stop_mu_) = false;
};

}  // namespace loophost::sdk
