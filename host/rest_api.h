// RestApi: the O-Cloud notification REST API on LOOPHOST_API_ADDR, in two
// shapes: v1 (/api/ocloudNotifications/v1/, cloud-event-proxy's: id,
// endpointUri, uriLocation, resource; errors 400 {"error":...}) and v2
// (/api/ocloudNotifications/v2/, O-RAN: SubscriptionId, EndpointUri,
// UriLocation, ResourceAddress; 400/404/409). A subscription is stored only
// after its endpoint answered the check (v1: an empty POST gets 204; v2: the
// current state event gets 2xx) through the transport loop; on any error
// nothing is written. Borrows the store, plugins, router and metrics, which
// must outlive it. Start/Stop from one thread; handlers run on the server's
// own thread pool.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/env_parse.h"
#include "host/event_metrics.h"
#include "host/event_router.h"
#include "host/event_store.h"
#include "host/role_plugins.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace loophost::host {

struct RestApiOptions {
  HostPort listen{"127.0.0.1", 9085};  // LOOPHOST_API_ADDR; port 0: any
  // scheme://host:port of TRANSPORT_HOST: what uriLocation/UriLocation use.
  std::string external_base = "http://localhost:9085";
  std::string transport_plugin = "http";
  size_t max_body_bytes = size_t{64} * 1024;  // larger bodies get 413
  // The endpoint check's POST, and the CurrentState RPC.
  absl::Duration check_timeout = absl::Seconds(2);
  absl::Duration current_state_deadline = absl::Seconds(2);
};

inline constexpr char kApiV1Prefix[] = "/api/ocloudNotifications/v1";
inline constexpr char kApiV2Prefix[] = "/api/ocloudNotifications/v2";

// True for an absolute http:// or https:// URL with a host (and a valid port
// if one is given), and no whitespace or control characters.
bool IsHttpUrl(absl::string_view url);

class RestApi {
 public:
  RestApi(RestApiOptions options, EventStore& store, const RolePlugins& plugins,
          EventRouter& router, EventMetrics& metrics);
  ~RestApi();  // Stop()
  RestApi(const RestApi&) = delete;
  RestApi& operator=(const RestApi&) = delete;

  // Binds (the error names the address) and serves on its own threads.
  absl::Status Start();
  uint16_t port() const { return port_; }
  // Stops accepting, finishes the requests in flight, joins. Idempotent.
  void Stop();

  struct Reply;  // a handler's answer: status, body, headers

 private:
  Reply Subscribe(int version, const std::string& body);
  std::optional<Reply> CheckEndpoint(int version, const std::string& endpoint,
                                     const PublisherRecord& publisher);
  Reply ListSubscriptions(int version) const;
  Reply GetSubscription(int version, const std::string& id) const;
  Reply DeleteSubscription(int version, const std::string& id);
  Reply DeleteAllSubscriptions(int version);
  Reply ListPublishers(int version) const;
  Reply GetPublisher(int version, const std::string& id) const;
  Reply CurrentState(int version, std::string resource);
  Reply CreateEvent(const std::string& body);
  void UpdateSubscriptionGauge();

  const RestApiOptions options_;
  EventStore& store_;
  const RolePlugins& plugins_;
  EventRouter& router_;
  EventMetrics& metrics_;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
};

}  // namespace loophost::host
