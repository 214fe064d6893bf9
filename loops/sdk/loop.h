// Loop: what a plugin author implements. A loop is a library: the same object
// runs in its own process (ServeLoop in serve.h) or inside the host
// (LoopServer::StartInProcess), so the host's code path is the same either way.
// The LoopServer owns the loop and calls it from one thread at a time, except
// for the services it returns, which gRPC calls concurrently.
#pragma once

#include <grpcpp/impl/codegen/service_type.h>
#include <prometheus/registry.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "loops/sdk/health_checks.h"

namespace loophost::sdk {

// The plugin's environment: in a child, its environ; in-process, what the host
// would have given the child (LOOP_NAME, NODE_NAME, LOOP_PROMETHEUS_PORT, ...).
using LoopEnv = std::map<std::string, std::string>;

// What a loop gets at Start. Every reference outlives the loop's Stop().
struct LoopContext {
  const LoopEnv& env;
  HealthChecks& health;
  // Exposed on 127.0.0.1:$LOOP_PROMETHEUS_PORT/metrics.
  prometheus::Registry& metrics;
};

class Loop {
 public:
  virtual ~Loop() = default;

  virtual std::string Name() const = 0;
  virtual std::string Version() const = 0;
  // Role services it serves: "event_source", "transport", ...
  virtual std::vector<std::string> Kinds() const { return {}; }

  // gRPC services, owned by the loop. Called once, after Start succeeded and
  // before serving; they must stay valid until Stop() returns.
  virtual std::vector<grpc::Service*> Services() { return {}; }

  // Registers checks and metrics, starts work. An error fails the plugin's
  // start (the process exits 1). Must not block for long: the plugin's
  // handshake waits for it.
  virtual absl::Status Start(LoopContext& ctx) = 0;

  // Called once, after the server stopped (no RPC runs any more), if Start
  // succeeded.
  virtual void Stop() {}
};

}  // namespace loophost::sdk
