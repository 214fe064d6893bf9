// Implementation of RestApi (rest_api.h) on cpp-httplib, with nlohmann-json
// parsed without exceptions. Handlers build a Reply (status, JSON or text) from
// the store and the plugins; nothing is written before every check passed.
#include "host/rest_api.h"

#include <httplib.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <exception>
#include <map>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "events/cloud_event_json.h"
#include "events/ptp_events.h"
#include "host/http_listener.h"
#include "loophost/v1/event_source.grpc.pb.h"
#include "loophost/v1/transport.grpc.pb.h"

namespace loophost::host {

namespace pb = ::loophost::v1;
using nlohmann::json;

struct RestApi::Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::string location;  // Location header, if any
};

namespace {

constexpr char kJsonType[] = "application/json";
constexpr char kTextType[] = "text/plain; charset=utf-8";
constexpr int kServerThreads = 8;

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Both versions answer errors as {"error": "..."}.
RestApi::Reply Error(int status, absl::string_view message) {
  return {status, Dump(json{{"error", std::string(message)}}), kJsonType, ""};
}
RestApi::Reply Json(int status, const json& j) {
  return {status, Dump(j), kJsonType, ""};
}

const char* Prefix(int version) {
  return version == 1 ? kApiV1Prefix : kApiV2Prefix;
}

// A string member, or nullptr when it is missing or not a string.
const std::string* StringField(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string()) return nullptr;
  return it->get_ptr<const std::string*>();
}

void ListenSocketOptions(socket_t sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

bool TypeMatches(const std::string& registered, const std::string& type) {
  return registered == type || (registered == events::kClockClassEventType &&
                                type == events::kClockClassEventTypeV1);
}

}  // namespace

bool IsHttpUrl(absl::string_view url) {
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return false;
  }
  absl::string_view rest;
  const std::string lower = absl::AsciiStrToLower(url.substr(0, 8));
  if (absl::StartsWith(lower, "http://")) {
    rest = url.substr(7);
  } else if (absl::StartsWith(lower, "https://")) {
    rest = url.substr(8);
  } else {
    return false;
  }
  absl::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  absl::string_view host = authority;
  absl::string_view port;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos || close == 1) return false;
    host = authority.substr(0, close + 1);
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return false;
      port = after.substr(1);
      if (port.empty()) return false;
    }
  } else if (const size_t colon = authority.rfind(':');
             colon != absl::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (port.empty()) return false;
  }
  if (host.empty()) return false;
  if (!port.empty()) {
    int value = 0;
    if (!absl::SimpleAtoi(port, &value) || value < 1 || value > 65535) {
      return false;
    }
    for (char c : port) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    }
  }
  return true;
}

RestApi::RestApi(RestApiOptions options, EventStore& store,
                 const RolePlugins& plugins, EventRouter& router,
                 EventMetrics& metrics)
    : options_(std::move(options)),
      store_(store),
      plugins_(plugins),
      router_(router),
      metrics_(metrics) {}

RestApi::~RestApi() { Stop(); }

absl::Status RestApi::Start() {
  if (server_ != nullptr) {
    return absl::FailedPreconditionError("REST API already started");
  }
  auto server = std::make_unique<httplib::Server>();
  server->set_socket_options(ListenSocketOptions);
  server->set_keep_alive_timeout(2);
  // A client that keeps its connection (a publisher posting events) is not
  // made to reconnect every 5 requests, cpp-httplib's default.
  server->set_keep_alive_max_count(10000);
  server->set_read_timeout(std::chrono::seconds(5));
  server->set_write_timeout(std::chrono::seconds(5));
  server->set_payload_max_length(options_.max_body_bytes);
  // Answers go out at once (headers and body are separate writes; with Nagle
  // the body would wait for the client's delayed ACK).
  server->set_tcp_nodelay(true);

  using httplib::Request;
  using httplib::Response;
  auto send = [](Response& res, const Reply& reply) {
    res.status = reply.status;
    if (!reply.location.empty()) res.set_header("Location", reply.location);
    if (reply.status != 204) res.set_content(reply.body, reply.content_type);
  };
  for (int version : {1, 2}) {
    const std::string p = Prefix(version);
    server->Get(p + "/health", [](const Request&, Response& res) {
      res.set_content("OK", kTextType);
    });
    server->Get(p + "/publishers", [=, this](const Request&, Response& res) {
      send(res, ListPublishers(version));
    });
    server->Get(p + "/publishers/([^/]+)",
                [=, this](const Request& req, Response& res) {
                  send(res, GetPublisher(version, req.matches[1]));
                });
    server->Post(p + "/subscriptions",
                 [=, this](const Request& req, Response& res) {
                   send(res, Subscribe(version, req.body));
                 });
    server->Get(p + "/subscriptions", [=, this](const Request&, Response& res) {
      send(res, ListSubscriptions(version));
    });
    server->Delete(p + "/subscriptions",
                   [=, this](const Request&, Response& res) {
                     send(res, DeleteAllSubscriptions(version));
                   });
    server->Get(p + "/subscriptions/([^/]+)",
                [=, this](const Request& req, Response& res) {
                  send(res, GetSubscription(version, req.matches[1]));
                });
    server->Delete(p + "/subscriptions/([^/]+)",
                   [=, this](const Request& req, Response& res) {
                     send(res, DeleteSubscription(version, req.matches[1]));
                   });
    server->Get(p + "/(.+)/CurrentState",
                [=, this](const Request& req, Response& res) {
                  send(res, CurrentState(version, req.matches[1]));
                });
    server->Post(p + "/create/event",
                 [=, this](const Request& req, Response& res) {
                   send(res, CreateEvent(req.body));
                 });
  }
  server->set_error_handler(httplib::Server::HandlerWithResponse(
      [](const Request& req, Response& res) {
        if (!res.body.empty()) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        std::string message;
        if (res.status == 404) {
          message = absl::StrCat("not found: ", req.method, " ", req.path);
        } else if (res.status == 413) {
          message = "request body too large";
        } else if (res.status == 405) {
          message = absl::StrCat("method not allowed: ", req.method);
        } else {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        res.set_content(Dump(json{{"error", message}}), kJsonType);
        return httplib::Server::HandlerResponse::Handled;
      }));
  server->set_exception_handler([](const Request& req, Response& res,
                                   std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(std::move(ep));
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    LogError("REST API handler failed", {{"path", req.path}, {"error", what}});
    res.status = 500;
    res.set_content(Dump(json{{"error", "internal error"}}), kJsonType);
  });

  auto port =
      BindAndServe(*server, options_.listen, kServerThreads,
                   "REST API: cannot listen on LOOPHOST_API_ADDR=", &thread_);
  if (!port.ok()) return port.status();
  server_ = std::move(server);
  port_ = *port;
  const std::string host =
      options_.listen.host.empty() ? "0.0.0.0" : options_.listen.host;
  UpdateSubscriptionGauge();
  metrics_.SetActivePublishers(store_.ListPublishers().size());
  LogInfo("REST API listening", {{"addr", HostPortString(host, port_)},
                                 {"external", options_.external_base}});
  return absl::OkStatus();
}

void RestApi::Stop() {
  if (server_ == nullptr) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

void RestApi::UpdateSubscriptionGauge() {
  metrics_.SetActiveSubscriptions(store_.ListSubscriptions().size());
}

namespace {

json SubscriptionJson(int version, const SubscriptionRecord& s,
                      const std::string& base) {
  const std::string location =
      absl::StrCat(base, Prefix(version), "/subscriptions/", s.id);
  if (version == 1) {
    return {{"id", s.id},
            {"endpointUri", s.endpoint},
            {"uriLocation", location},
            {"resource", s.resource_address}};
  }
  return {{"SubscriptionId", s.id},
          {"EndpointUri", s.endpoint},
          {"UriLocation", location},
          {"ResourceAddress", s.resource_address}};
}

json PublisherJson(int version, const PublisherRecord& p,
                   const std::string& base) {
  const std::string location =
      absl::StrCat(base, Prefix(version), "/publishers/", p.id);
  if (version == 1) {
    return {{"id", p.id},
            {"endpointUri", p.endpoint_uri},
            {"uriLocation", location},
            {"resource", p.resource_address}};
  }
  return {{"SubscriptionId", p.id},
          {"EndpointUri", p.endpoint_uri},
          {"UriLocation", location},
          {"ResourceAddress", p.resource_address}};
}

}  // namespace

RestApi::Reply RestApi::Subscribe(int version, const std::string& body) {
  Reply reply = [&]() -> Reply {
    const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return Error(400, "the body is not a JSON object");
    }
    const char* resource_field = version == 1 ? "resource" : "ResourceAddress";
    const char* endpoint_field = version == 1 ? "endpointUri" : "EndpointUri";
    const std::string* resource = StringField(j, resource_field);
    const std::string* endpoint = StringField(j, endpoint_field);
    if (resource == nullptr || resource->empty()) {
      return Error(400, absl::StrCat("missing field ", resource_field));
    }
    if (endpoint == nullptr || endpoint->empty()) {
      return Error(400, absl::StrCat("missing field ", endpoint_field));
    }
    if (!IsHttpUrl(*endpoint)) {
      return Error(400, absl::StrCat(endpoint_field, " \"", *endpoint,
                                     "\" is not an http(s) URL"));
    }
    std::optional<PublisherRecord> publisher =
        store_.FindPublisherByResource(*resource);
    if (!publisher) {
      return Error(version == 1 ? 400 : 404,
                   absl::StrCat("no publisher for resource ", *resource));
    }
    for (const SubscriptionRecord& s : store_.ListSubscriptions()) {
      if (s.endpoint != *endpoint || s.resource_address != *resource) continue;
      if (version == 1 && s.api_version == 1) {
        // cloud-event-proxy's v1 answers a repeated subscription with the
        // one that exists.
        return Json(201, SubscriptionJson(1, s, options_.external_base));
      }
      return Error(
          version == 1 ? 400 : 409,
          absl::StrCat("endpoint ", *endpoint, " is already subscribed to ",
                       *resource, " as ", s.id));
    }
    if (std::optional<Reply> failed =
            CheckEndpoint(version, *endpoint, *publisher)) {
      return *failed;
    }
    SubscriptionRecord record;
    record.api_version = version;
    record.resource_address = *resource;
    record.endpoint = *endpoint;
    absl::StatusOr<SubscriptionRecord> added = store_.AddSubscription(record);
    if (absl::IsAlreadyExists(added.status())) {
      return Error(version == 1 ? 400 : 409, added.status().message());
    }
    if (!added.ok()) {
      LogError("storing a subscription failed",
               {{"error", std::string(added.status().message())}});
      return Error(500, "storing the subscription failed");
    }
    LogInfo("subscription created", {{"id", added->id},
                                     {"api", absl::StrCat("v", version)},
                                     {"resource", added->resource_address},
                                     {"endpoint", added->endpoint}});
    Reply created =
        Json(201, SubscriptionJson(version, *added, options_.external_base));
    created.location = absl::StrCat(options_.external_base, Prefix(version),
                                    "/subscriptions/", added->id);
    return created;
  }();
  if (reply.status == 201) {
    UpdateSubscriptionGauge();
  } else {
    metrics_.SubscriptionCreateFailed();
  }
  return reply;
}

// nullopt: the endpoint passed; else the error to answer.
std::optional<RestApi::Reply> RestApi::CheckEndpoint(
    int version, const std::string& endpoint,
    const PublisherRecord& publisher) {
  std::optional<ServingPlugin> transport =
      plugins_.ServingNamed(options_.transport_plugin);
  if (!transport) {
    return Error(
        503, absl::StrCat("the transport loop \"", options_.transport_plugin,
                          "\" is not serving; try again"));
  }
  pb::CheckEndpointRequest request;
  request.set_endpoint(endpoint);
  request.set_timeout_ms(
      static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.check_timeout)));
  if (version == 2) {
    // O-RAN: the subscriber gets the current state at once.
    std::optional<ServingPlugin> source =
        plugins_.ServingNamed(publisher.source_plugin);
    if (source) {
      auto stub = pb::EventSource::NewStub(source->channel);
      grpc::ClientContext context;
      context.set_deadline(
          absl::ToChronoTime(absl::Now() + options_.current_state_deadline));
      pb::CurrentStateRequest state_request;
      state_request.set_resource_address(publisher.resource_address);
      pb::CurrentStateResponse state;
      if (stub->CurrentState(&context, state_request, &state).ok()) {
        request.set_body(events::EncodeV2Event(state.event()));
        request.set_content_type(kJsonType);
      }
    }
    if (request.body().empty()) {
      LogDebug("endpoint check without the current state (source not serving)",
               {{"resource", publisher.resource_address}});
    }
  }
  auto stub = pb::Transport::NewStub(transport->channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.check_timeout +
                                          absl::Seconds(1)));
  pb::CheckEndpointResponse response;
  const grpc::Status status = stub->CheckEndpoint(&context, request, &response);
  if (!status.ok()) {
    return Error(503, absl::StrCat("endpoint check through the transport loop "
                                   "failed: ",
                                   status.error_message()));
  }
  const int code = response.http_status();
  const bool passed = version == 1 ? code == 204 : code >= 200 && code < 300;
  if (passed) return std::nullopt;
  std::string why = code == 0
                        ? absl::StrCat("no answer: ", response.error())
                        : absl::StrCat("it answered ", code, ", expected ",
                                       version == 1 ? "204" : "2xx");
  return Error(400,
               absl::StrCat("endpoint check of ", endpoint, " failed: ", why));
}

RestApi::Reply RestApi::ListSubscriptions(int version) const {
  json list = json::array();
  for (const SubscriptionRecord& s : store_.ListSubscriptions()) {
    list.push_back(SubscriptionJson(version, s, options_.external_base));
  }
  return Json(200, list);
}

RestApi::Reply RestApi::GetSubscription(int version,
                                        const std::string& id) const {
  std::optional<SubscriptionRecord> s = store_.FindSubscription(id);
  if (!s) {
    return Error(version == 1 ? 400 : 404,
                 absl::StrCat("subscription ", id, " not found"));
  }
  return Json(200, SubscriptionJson(version, *s, options_.external_base));
}

RestApi::Reply RestApi::DeleteSubscription(int version, const std::string& id) {
  absl::Status status = store_.DeleteSubscription(id);
  if (!status.ok()) {
    metrics_.SubscriptionDeleteFailed();
    if (absl::IsNotFound(status)) {
      return Error(version == 1 ? 400 : 404, status.message());
    }
    return Error(500, status.message());
  }
  UpdateSubscriptionGauge();
  LogInfo("subscription deleted", {{"id", id}});
  if (version == 1) return Json(200, json{{"status", "OK"}});
  return Reply{204, "", kJsonType, ""};
}

RestApi::Reply RestApi::DeleteAllSubscriptions(int version) {
  absl::StatusOr<int> deleted = store_.DeleteAllSubscriptions();
  if (!deleted.ok()) {
    metrics_.SubscriptionDeleteFailed();
    return Error(500, deleted.status().message());
  }
  UpdateSubscriptionGauge();
  LogInfo("all subscriptions deleted", {{"count", absl::StrCat(*deleted)}});
  if (version == 1) {
    return Json(200, json{{"status", "deleted all subscriptions"}});
  }
  return Reply{204, "", kJsonType, ""};
}

RestApi::Reply RestApi::ListPublishers(int version) const {
  json list = json::array();
  for (const PublisherRecord& p : store_.ListPublishers()) {
    list.push_back(PublisherJson(version, p, options_.external_base));
  }
  return Json(200, list);
}

RestApi::Reply RestApi::GetPublisher(int version, const std::string& id) const {
  std::optional<PublisherRecord> p = store_.FindPublisher(id);
  if (!p) {
    return Error(version == 1 ? 400 : 404,
                 absl::StrCat("publisher ", id, " not found"));
  }
  return Json(200, PublisherJson(version, *p, options_.external_base));
}

RestApi::Reply RestApi::CurrentState(int version, std::string resource) {
  if (!absl::StartsWith(resource, "/")) resource.insert(0, "/");
  std::optional<PublisherRecord> publisher =
      store_.FindPublisherByResource(resource);
  if (!publisher) {
    metrics_.StatusCheck(resource, false);
    return Error(version == 1 ? 400 : 404,
                 absl::StrCat("no publisher for resource ", resource));
  }
  std::optional<ServingPlugin> source =
      plugins_.ServingNamed(publisher->source_plugin);
  if (!source) {
    metrics_.StatusCheck(resource, false);
    return Error(503,
                 absl::StrCat("the source loop \"", publisher->source_plugin,
                              "\" is not serving; try again"));
  }
  auto stub = pb::EventSource::NewStub(source->channel);
  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + options_.current_state_deadline));
  pb::CurrentStateRequest request;
  request.set_resource_address(resource);
  pb::CurrentStateResponse response;
  const grpc::Status status = stub->CurrentState(&context, request, &response);
  if (!status.ok()) {
    metrics_.StatusCheck(resource, false);
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
      return Error(version == 1 ? 400 : 404, status.error_message());
    }
    return Error(503, absl::StrCat("CurrentState: ", status.error_message()));
  }
  metrics_.StatusCheck(resource, true);
  return Reply{200,
               version == 1 ? events::EncodeV1Event(response.event())
                            : events::EncodeV2Event(response.event()),
               kJsonType, ""};
}

// create/event: the seed's v1 body ({"id": <publisher id>, "type", "time",
// "data": {"version", "values": [{"resource", "dataType", "valueType",
// "value"}]}}), or a v2 CloudEvent naming its publisher by "source".
RestApi::Reply RestApi::CreateEvent(const std::string& body) {
  const json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(400, "the body is not a JSON object");
  }
  std::optional<PublisherRecord> publisher;
  bool by_source = false;
  if (const std::string* id = StringField(j, "id"); id != nullptr) {
    publisher = store_.FindPublisher(*id);
  }
  if (!publisher) {
    if (const std::string* source = StringField(j, "source");
        source != nullptr) {
      publisher = store_.FindPublisherByResource(*source);
      by_source = publisher.has_value();
    }
  }
  if (!publisher) {
    return Error(400, "no publisher found for the event's id or source");
  }
  const std::string& address = publisher->resource_address;
  auto fail = [&](absl::string_view message) {
    metrics_.ApiEventPublished(address, false);
    return Error(400, message);
  };
  pb::CloudEvent event;
  event.set_spec_version("1.0");
  event.set_source(address);
  const std::string* id = by_source ? StringField(j, "id") : nullptr;
  event.set_id(id != nullptr && !id->empty() ? *id : NewUuid());
  if (const std::string* type = StringField(j, "type"); type != nullptr) {
    if (!TypeMatches(publisher->event_type, *type)) {
      return fail(absl::StrCat("type ", *type, " is not the publisher's (",
                               publisher->event_type, ")"));
    }
    event.set_type(*type);
  } else if (j.contains("type")) {
    return fail("type is not a string");
  } else {
    event.set_type(publisher->event_type);
  }
  absl::Time time = absl::Now();
  if (auto it = j.find("time"); it != j.end() && !it->is_null()) {
    std::string error;
    if (!it->is_string() ||
        !absl::ParseTime(absl::RFC3339_full, it->get<std::string>(), &time,
                         &error)) {
      return fail("time is not an RFC 3339 string");
    }
  }
  event.set_time_unix_nanos(absl::ToUnixNanos(time));
  pb::EventData* data = event.mutable_data();
  data->set_version("1.0");
  if (auto d = j.find("data"); d != j.end() && !d->is_null()) {
    if (!d->is_object()) return fail("data is not an object");
    auto values = d->find("values");
    if (values != d->end() && !values->is_null()) {
      if (!values->is_array()) return fail("data.values is not an array");
      for (const json& v : *values) {
        if (!v.is_object()) return fail("a value is not an object");
        auto pick = [&v](const char* a, const char* b) -> const std::string* {
          const std::string* s = StringField(v, a);
          return s != nullptr ? s : StringField(v, b);
        };
        pb::EventValue* value = data->add_values();
        const std::string* resource = pick("ResourceAddress", "resource");
        const std::string* data_type = pick("data_type", "dataType");
        const std::string* value_type = pick("value_type", "valueType");
        if (resource == nullptr || data_type == nullptr ||
            value_type == nullptr) {
          return fail(
              "a value needs ResourceAddress (resource), data_type "
              "(dataType) and value_type (valueType)");
        }
        value->set_resource_address(*resource);
        value->set_data_type(*data_type);
        value->set_value_type(*value_type);
        auto raw = v.find("value");
        if (raw == v.end()) return fail("a value has no \"value\"");
        if (raw->is_string()) {
          value->set_value(raw->get<std::string>());
        } else if (raw->is_number() || raw->is_boolean()) {
          value->set_value(raw->dump());
        } else {
          return fail("a value's \"value\" must be a string or a number");
        }
      }
    }
  }
  absl::StatusOr<int> routed = router_.Publish(event);
  if (!routed.ok()) {
    metrics_.ApiEventPublished(address, false);
    LogError("create/event: storing the event failed",
             {{"error", std::string(routed.status().message())}});
    return Error(500, "storing the event failed");
  }
  metrics_.ApiEventPublished(address, true);
  return Json(202, json{{"status", "Event sent"}});
}

}  // namespace loophost::host
