// HttpTransportLoop: the "http" loop (kind "transport"). It serves
// loophost.v1.Transport: Deliver takes the host's batches of deliveries on a
// stream and POSTs each body to its endpoint through a HttpSender, answering
// with one DeliveryResult per delivery as soon as that endpoint answered
// (results come in completion order, batched when several are ready at
// once); CheckEndpoint is one POST.
// Configured from its environment (ParseHttpTransportConfig). Metrics: the
// seed's cne_transport_* family plus request latency; health check
// "http.transport". The loop is owned by its LoopServer.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "loops/http/http_sender.h"
#include "loops/sdk/loop.h"

namespace loophost::loops::http {

inline constexpr char kHealthCheck[] = "http.transport";
inline constexpr char kDefaultTransportHost[] = "http://localhost:9085";

struct HttpTransportConfig {
  std::string transport_host = kDefaultTransportHost;
  HttpSenderOptions sender;
};

// TRANSPORT_HOST (an http:// or https:// URL; another scheme is an error
// naming it), HTTP_TRANSPORT_TIMEOUT ("2s", "500ms"),
// HTTP_TRANSPORT_MAX_IN_FLIGHT, HTTP_TRANSPORT_MAX_HOST_CONNECTIONS,
// HTTP_TRANSPORT_MAX_IDLE_CONNECTIONS, HTTP_TRANSPORT_CA_FILE (PEM CAs for
// https endpoints instead of the system's). Errors name the variable and
// value; an unreadable CA file fails the loop's start.
absl::StatusOr<HttpTransportConfig> ParseHttpTransportConfig(
    const sdk::LoopEnv& env);

std::unique_ptr<sdk::Loop> MakeHttpTransportLoop();

}  // namespace loophost::loops::http
