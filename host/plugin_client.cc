// Implementation of PluginClient (plugin_client.h).
#include "host/plugin_client.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace loophost::host {
namespace {

void SetDeadline(grpc::ClientContext& context, absl::Time deadline) {
  context.set_deadline(absl::ToChronoTime(deadline));
}

}  // namespace

grpc::ChannelArguments PluginChannelArguments() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  // Reconnect quickly: a plugin's socket is local, backing off only delays
  // recovery.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 10);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 10);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
  return args;
}

PluginClient::PluginClient(std::string plugin,
                           std::shared_ptr<grpc::Channel> channel,
                           HostMetrics& metrics)
    : plugin_(std::move(plugin)),
      channel_(std::move(channel)),
      metrics_(metrics),
      health_stub_(grpc::health::v1::Health::NewStub(channel_)),
      controller_stub_(::plugin::GRPCController::NewStub(channel_)),
      plugin_stub_(loophost::v1::Plugin::NewStub(channel_)) {}

absl::Status PluginClient::Finish(const char* method, absl::Time start,
                                  const grpc::Status& status) {
  metrics_.ObserveRpc(plugin_, method, absl::Now() - start, status.ok());
  return ToAbslStatus(status, method);
}

absl::Status PluginClient::Check(absl::Time deadline, bool wait_for_ready) {
  grpc::ClientContext context;
  SetDeadline(context, deadline);
  context.set_wait_for_ready(wait_for_ready);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(kPluginHealthService);
  grpc::health::v1::HealthCheckResponse response;
  absl::Time start = absl::Now();
  absl::Status status = Finish(
      "Health/Check", start, health_stub_->Check(&context, request, &response));
  if (!status.ok()) return status;
  if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::UnavailableError(
        absl::StrCat("Health/Check: status ",
                     grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                         response.status())));
  }
  return absl::OkStatus();
}

absl::Status PluginClient::WaitUntilServing(absl::Time deadline) {
  return Check(deadline, /*wait_for_ready=*/true);
}

absl::Status PluginClient::CheckHealth(absl::Duration deadline) {
  return Check(absl::Now() + deadline, /*wait_for_ready=*/false);
}

absl::StatusOr<PluginDescription> PluginClient::Describe(
    absl::Duration deadline) {
  grpc::ClientContext context;
  SetDeadline(context, absl::Now() + deadline);
  loophost::v1::DescribeRequest request;
  loophost::v1::DescribeResponse response;
  absl::Time start = absl::Now();
  grpc::Status status = plugin_stub_->Describe(&context, request, &response);
  PluginDescription out;
  if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED)
    return out;  // plain go-plugin plugin
  if (absl::Status s = Finish("Plugin/Describe", start, status); !s.ok())
    return s;
  out.has_plugin_service = true;
  out.name = response.name();
  out.version = response.version();
  out.kinds.assign(response.kinds().begin(), response.kinds().end());
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> PluginClient::HealthReport(
    absl::Duration deadline) {
  grpc::ClientContext context;
  SetDeadline(context, absl::Now() + deadline);
  loophost::v1::HealthReportRequest request;
  loophost::v1::HealthReportResponse response;
  absl::Time start = absl::Now();
  if (absl::Status s =
          Finish("Plugin/HealthReport", start,
                 plugin_stub_->HealthReport(&context, request, &response));
      !s.ok()) {
    return s;
  }
  return std::map<std::string, std::string>(response.checks().begin(),
                                            response.checks().end());
}

absl::Status PluginClient::Shutdown(absl::Duration deadline) {
  grpc::ClientContext context;
  SetDeadline(context, absl::Now() + deadline);
  ::plugin::Empty request;
  ::plugin::Empty response;
  absl::Time start = absl::Now();
  return Finish("GRPCController/Shutdown", start,
                controller_stub_->Shutdown(&context, request, &response));
}

}  // namespace loophost::host
