// PluginClient: the host's stubs for one plugin generation (grpc.health.v1,
// GRPCController, loophost.v1.Plugin) over that generation's channel. Every
// call has a deadline and is timed into loop_plugin_rpc_duration_seconds. A new
// generation gets a new PluginClient, so no state of a dead plugin survives.
// Thread-safe (gRPC stubs are).
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "host/host_metrics.h"
#include "loophost/v1/plugin.grpc.pb.h"
#include "plugin/grpc_controller.grpc.pb.h"

namespace loophost::host {

// go-plugin registers its liveness under this grpc.health service name.
inline constexpr char kPluginHealthService[] = "plugin";

struct PluginDescription {
  bool has_plugin_service = false;  // false for plain go-plugin plugins
  std::string name;
  std::string version;
  std::vector<std::string> kinds;
};

class PluginClient {
 public:
  PluginClient(std::string plugin, std::shared_ptr<grpc::Channel> channel,
               HostMetrics& metrics);

  // Waits (wait_for_ready) until the channel is up and grpc.health says
  // SERVING.
  absl::Status WaitUntilServing(absl::Time deadline);
  // One grpc.health check; OK only for SERVING.
  absl::Status CheckHealth(absl::Duration deadline);
  // loophost.v1.Plugin/Describe; a plugin without the service yields
  // has_plugin_service=false.
  absl::StatusOr<PluginDescription> Describe(absl::Duration deadline);
  absl::StatusOr<std::map<std::string, std::string>> HealthReport(
      absl::Duration deadline);
  // go-plugin's graceful stop request.
  absl::Status Shutdown(absl::Duration deadline);

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  loophost::v1::Plugin::Stub& plugin_stub() { return *plugin_stub_; }

 private:
  absl::Status Check(absl::Time deadline, bool wait_for_ready);
  absl::Status Finish(const char* method, absl::Time start,
                      const grpc::Status& status);

  const std::string plugin_;
  std::shared_ptr<grpc::Channel> channel_;
  HostMetrics& metrics_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_stub_;
  std::unique_ptr<::plugin::GRPCController::Stub> controller_stub_;
  std::unique_ptr<loophost::v1::Plugin::Stub> plugin_stub_;
};

// Channel arguments used for every plugin connection: a local subchannel pool,
// so a new generation never shares a connection with the dead one, and no
// client-side retries.
grpc::ChannelArguments PluginChannelArguments();

}  // namespace loophost::host
