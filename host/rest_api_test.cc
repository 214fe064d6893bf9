// RestApi through real HTTP on 127.0.0.1:0, with a real EventStore, a fake
// source and a transport that POSTs for real to loopback subscribers
// (httplib servers on port 0): table tests of the v1 and v2 status codes and
// shapes, and that nothing is stored when a request fails.
#include "host/rest_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_matchers.h"
#include "events/ptp_events.h"
#include "tests/testing/child_process.h"
#include "tests/testing/event_fakes.h"

namespace loophost::host {
namespace {

namespace pb = ::loophost::v1;
using ::loophost::testing::FakeEventSource;
using ::loophost::testing::FakeRolePlugins;
using ::loophost::testing::FakeServer;
using ::loophost::testing::FakeTransport;
using ::loophost::testing::IsOk;
using ::loophost::testing::MakeEvent;
using ::loophost::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using json = nlohmann::json;

constexpr char kLock[] = "/cluster/node/n1/sync/ptp-status/lock-state";
constexpr char kClass[] = "/cluster/node/n1/sync/ptp-status/clock-class";
constexpr char kBase[] = "http://node.example:9085";

TEST(IsHttpUrlTest, AcceptsHttpAndHttpsUrlsOnly) {
  for (const char* good :
       {"http://a/", "https://a", "HTTP://127.0.0.1:8080/x?y#z",
        "http://[::1]:9/p", "http://user@host:1/"}) {
    EXPECT_TRUE(IsHttpUrl(good)) << good;
  }
  for (const char* bad :
       {"", "ftp://a/", "localhost:8080/x", "http://", "http:///x",
        "http://a b/", "http://a:/", "http://a:99999/", "http://a:8x/",
        "http://[::1/", "/relative", "http://a/\n"}) {
    EXPECT_FALSE(IsHttpUrl(bad)) << bad;
  }
}

// A loopback subscriber: /ok answers 204, /ok200 200, /fail 500; every POST
// body is kept.
class Subscriber {
 public:
  Subscriber() {
    auto record = [this](const httplib::Request& req) {
      absl::MutexLock lock(&mu_);
      posts_.push_back({req.path, req.body});
    };
    server_.Post("/ok",
                 [record](const httplib::Request& req, httplib::Response& res) {
                   record(req);
                   res.status = 204;
                 });
    server_.Post("/ok200",
                 [record](const httplib::Request& req, httplib::Response& res) {
                   record(req);
                   res.status = 200;
                 });
    server_.Post("/fail",
                 [record](const httplib::Request& req, httplib::Response& res) {
                   record(req);
                   res.status = 500;
                 });
    port_ = server_.bind_to_any_port("127.0.0.1");
    // Bound and listening: connections queue until the accept loop runs.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~Subscriber() {
    server_.stop();
    thread_.join();
  }
  std::string Url(const std::string& path) const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }
  std::vector<std::pair<std::string, std::string>> posts() const {
    absl::MutexLock lock(&mu_);
    return posts_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  mutable absl::Mutex mu_;
  std::vector<std::pair<std::string, std::string>> posts_ ABSL_GUARDED_BY(mu_);
};

class RestApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("lh-rest-");
    ASSERT_THAT(dir, IsOk());
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    auto store = EventStore::Open(dir_->Join("events.db"));
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
    metrics_ = std::make_unique<EventMetrics>(registry_);
    for (auto [resource, type] :
         {std::pair{kLock, events::kLockStateEventType},
          std::pair{kClass, events::kClockClassEventType}}) {
      auto p = store_->UpsertPublisher({"", resource, type, "ptp", kBase});
      ASSERT_THAT(p, IsOk());
      publisher_ids_[resource] = p->id;
    }
    std::vector<pb::Publisher> publishers(1);
    publishers[0].set_resource_address(kLock);
    publishers[0].set_event_type(events::kLockStateEventType);
    source_ = std::make_unique<FakeEventSource>(publishers);
    source_->SetCurrentState(
        kLock,
        MakeEvent("state-1", kLock, events::kLockStateEventType, "LOCKED"));
    source_server_ = std::make_unique<FakeServer>(source_.get());
    transport_ = std::make_unique<FakeTransport>(/*http_mode=*/true);
    transport_server_ = std::make_unique<FakeServer>(transport_.get());
    plugins_.Set("ptp", {kEventSourceKind}, source_server_->channel());
    plugins_.Set("http", {kTransportKind}, transport_server_->channel());

    router_ = std::make_unique<EventRouter>(EventRouterOptions{}, *store_,
                                            plugins_, *metrics_, nullptr);
    RestApiOptions options;
    options.listen = {"127.0.0.1", 0};
    options.external_base = kBase;
    options.max_body_bytes = 4096;
    options.check_timeout = absl::Seconds(1);
    api_ = std::make_unique<RestApi>(options, *store_, plugins_, *router_,
                                     *metrics_);
    ASSERT_THAT(api_->Start(), IsOk());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", api_->port());
    client_->set_read_timeout(std::chrono::seconds(10));
  }
  void TearDown() override {
    api_.reset();
    router_.reset();
    source_server_.reset();
    transport_server_.reset();
  }

  struct Answer {
    int status = 0;
    std::string body;
    json j;
  };
  Answer Do(const std::string& method, const std::string& path,
            const std::string& body = "") {
    httplib::Result r = method == "GET" ? client_->Get(path)
                        : method == "DELETE"
                            ? client_->Delete(path)
                            : client_->Post(path, body, "application/json");
    Answer a;
    if (!r) {
      ADD_FAILURE() << method << " " << path << ": " << r.error();
      return a;
    }
    a.status = r->status;
    a.body = r->body;
    a.j = json::parse(r->body, nullptr, false);
    return a;
  }
  Answer SubscribeV2(const std::string& resource, const std::string& endpoint) {
    return Do(
        "POST", "/api/ocloudNotifications/v2/subscriptions",
        json{{"ResourceAddress", resource}, {"EndpointUri", endpoint}}.dump());
  }
  Answer SubscribeV1(const std::string& resource, const std::string& endpoint) {
    return Do("POST", "/api/ocloudNotifications/v1/subscriptions",
              json{{"resource", resource}, {"endpointUri", endpoint}}.dump());
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<EventStore> store_;
  prometheus::Registry registry_;
  std::unique_ptr<EventMetrics> metrics_;
  std::map<std::string, std::string> publisher_ids_;
  FakeRolePlugins plugins_;
  std::unique_ptr<FakeEventSource> source_;
  std::unique_ptr<FakeServer> source_server_;
  std::unique_ptr<FakeTransport> transport_;
  std::unique_ptr<FakeServer> transport_server_;
  std::unique_ptr<EventRouter> router_;
  std::unique_ptr<RestApi> api_;
  std::unique_ptr<httplib::Client> client_;
  Subscriber subscriber_;
};

TEST_F(RestApiTest, HealthAnswersOk) {
  for (const char* path : {"/api/ocloudNotifications/v1/health",
                           "/api/ocloudNotifications/v2/health"}) {
    Answer a = Do("GET", path);
    EXPECT_EQ(a.status, 200) << path;
    EXPECT_EQ(a.body, "OK");
  }
  Answer missing = Do("GET", "/api/ocloudNotifications/v3/health");
  EXPECT_EQ(missing.status, 404);
  EXPECT_THAT(missing.j["error"].get<std::string>(), HasSubstr("not found"));
}

TEST_F(RestApiTest, V2SubscribeBadRequestsAreRefusedAndNothingIsStored) {
  const std::string ok = subscriber_.Url("/ok");
  struct Case {
    std::string name;
    std::string body;
    int status;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"not JSON", "{", 400, "not a JSON object"},
      {"an array", "[]", 400, "not a JSON object"},
      {"empty", "", 400, "not a JSON object"},
      {"no endpoint", json{{"ResourceAddress", kLock}}.dump(), 400,
       "missing field EndpointUri"},
      {"no resource", json{{"EndpointUri", ok}}.dump(), 400,
       "missing field ResourceAddress"},
      {"resource not a string",
       json{{"ResourceAddress", 5}, {"EndpointUri", ok}}.dump(), 400,
       "missing field ResourceAddress"},
      {"empty endpoint",
       json{{"ResourceAddress", kLock}, {"EndpointUri", ""}}.dump(), 400,
       "missing field EndpointUri"},
      {"ftp endpoint",
       json{{"ResourceAddress", kLock}, {"EndpointUri", "ftp://a/b"}}.dump(),
       400, "not an http(s) URL"},
      {"no scheme",
       json{{"ResourceAddress", kLock}, {"EndpointUri", "localhost:9/x"}}
           .dump(),
       400, "not an http(s) URL"},
      {"unknown resource",
       json{{"ResourceAddress", "/cluster/node/n1/nope"}, {"EndpointUri", ok}}
           .dump(),
       404, "no publisher"},
      {"endpoint answers 500",
       json{{"ResourceAddress", kLock},
            {"EndpointUri", subscriber_.Url("/fail")}}
           .dump(),
       400, "answered 500"},
      {"endpoint not listening",
       json{{"ResourceAddress", kLock}, {"EndpointUri", "http://127.0.0.1:1/"}}
           .dump(),
       400, "no answer"},
      {"oversized",
       json{{"ResourceAddress", kLock},
            {"EndpointUri", ok},
            {"pad", std::string(8192, 'x')}}
           .dump(),
       413, "too large"},
  };
  for (const Case& c : cases) {
    Answer a = Do("POST", "/api/ocloudNotifications/v2/subscriptions", c.body);
    EXPECT_EQ(a.status, c.status) << c.name << ": " << a.body;
    ASSERT_TRUE(a.j.is_object()) << c.name << ": " << a.body;
    EXPECT_THAT(a.j.value("error", ""), HasSubstr(c.error)) << c.name;
  }
  EXPECT_THAT(store_->ListSubscriptions(), IsEmpty());
  Answer list = Do("GET", "/api/ocloudNotifications/v2/subscriptions");
  EXPECT_EQ(list.status, 200);
  EXPECT_EQ(list.j, json::array());
}

TEST_F(RestApiTest, V2SubscribeCreatesPostsTheCurrentStateAndRefusesARepeat) {
  const std::string endpoint = subscriber_.Url("/ok200");
  Answer a = SubscribeV2(kLock, endpoint);
  ASSERT_EQ(a.status, 201) << a.body;
  const std::string id = a.j["SubscriptionId"];
  EXPECT_THAT(id, SizeIs(36));
  EXPECT_EQ(a.j["EndpointUri"], endpoint);
  EXPECT_EQ(a.j["ResourceAddress"], kLock);
  EXPECT_EQ(
      a.j["UriLocation"],
      std::string(kBase) + "/api/ocloudNotifications/v2/subscriptions/" + id);
  // The check POSTed the current state, v2 shape.
  auto posts = subscriber_.posts();
  ASSERT_THAT(posts, SizeIs(1));
  json state = json::parse(posts[0].second, nullptr, false);
  EXPECT_EQ(state["specversion"], "1.0");
  EXPECT_EQ(state["id"], "state-1");
  EXPECT_EQ(state["data"]["values"][0]["value"], "LOCKED");

  Answer again = SubscribeV2(kLock, endpoint);
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_THAT(again.j.value("error", ""), HasSubstr("already subscribed"));
  // Through v1 it is an error too (it exists as v2).
  EXPECT_EQ(SubscribeV1(kLock, endpoint).status, 400);
  // Another resource for the same endpoint is fine.
  EXPECT_EQ(SubscribeV2(kClass, endpoint).status, 201);
  EXPECT_THAT(store_->ListSubscriptions(), SizeIs(2));

  Answer got = Do("GET", "/api/ocloudNotifications/v2/subscriptions/" + id);
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.j, a.j);
  Answer list = Do("GET", "/api/ocloudNotifications/v2/subscriptions");
  EXPECT_THAT(list.j, SizeIs(2));
}

TEST_F(RestApiTest, V1SubscribeNeeds204AndAnswersARepeatWithTheSameOne) {
  Answer not_204 = SubscribeV1(kLock, subscriber_.Url("/ok200"));
  EXPECT_EQ(not_204.status, 400);
  EXPECT_THAT(not_204.j.value("error", ""), HasSubstr("expected 204"));
  EXPECT_EQ(SubscribeV1("/cluster/node/n1/nope", subscriber_.Url("/ok")).status,
            400);
  EXPECT_EQ(
      Do("POST", "/api/ocloudNotifications/v1/subscriptions", "nope").status,
      400);
  EXPECT_EQ(Do("POST", "/api/ocloudNotifications/v1/subscriptions",
               json{{"resource", kLock}}.dump())
                .status,
            400);
  EXPECT_EQ(Do("POST", "/api/ocloudNotifications/v1/subscriptions",
               json{{"resource", kLock}, {"endpointUri", "file:///x"}}.dump())
                .status,
            400);
  EXPECT_THAT(store_->ListSubscriptions(), IsEmpty());

  const std::string endpoint = subscriber_.Url("/ok");
  Answer a = SubscribeV1(kLock, endpoint);
  ASSERT_EQ(a.status, 201) << a.body;
  const std::string id = a.j["id"];
  EXPECT_EQ(a.j["endpointUri"], endpoint);
  EXPECT_EQ(a.j["resource"], kLock);
  EXPECT_EQ(
      a.j["uriLocation"],
      std::string(kBase) + "/api/ocloudNotifications/v1/subscriptions/" + id);
  // The v1 check is an empty POST.
  bool saw_empty = false;
  for (const auto& [path, body] : subscriber_.posts()) {
    if (path == "/ok") saw_empty = body.empty();
  }
  EXPECT_TRUE(saw_empty);
  Answer again = SubscribeV1(kLock, endpoint);
  EXPECT_EQ(again.status, 201);
  EXPECT_EQ(again.j["id"], id);
  EXPECT_THAT(store_->ListSubscriptions(), SizeIs(1));
  EXPECT_EQ(store_->ListSubscriptions()[0].api_version, 1);
}

TEST_F(RestApiTest, NoTransportMeans503AndNothingStored) {
  plugins_.Remove("http");
  Answer a = SubscribeV2(kLock, subscriber_.Url("/ok"));
  EXPECT_EQ(a.status, 503);
  EXPECT_THAT(a.j.value("error", ""), HasSubstr("transport"));
  EXPECT_THAT(store_->ListSubscriptions(), IsEmpty());
}

TEST_F(RestApiTest, GetAndDeleteByIdAndAll) {
  const std::string id =
      SubscribeV2(kLock, subscriber_.Url("/ok")).j.value("SubscriptionId", "");
  const std::string id1 =
      SubscribeV1(kClass, subscriber_.Url("/ok")).j.value("id", "");
  ASSERT_FALSE(id.empty());
  ASSERT_FALSE(id1.empty());
  EXPECT_EQ(Do("GET", "/api/ocloudNotifications/v2/subscriptions/nope").status,
            404);
  EXPECT_EQ(Do("GET", "/api/ocloudNotifications/v1/subscriptions/nope").status,
            400);
  // Both APIs list every subscription, each in its own shape.
  Answer v1_list = Do("GET", "/api/ocloudNotifications/v1/subscriptions");
  ASSERT_THAT(v1_list.j, SizeIs(2));
  EXPECT_TRUE(v1_list.j[0].contains("endpointUri"));

  Answer del = Do("DELETE", "/api/ocloudNotifications/v2/subscriptions/" + id);
  EXPECT_EQ(del.status, 204);
  EXPECT_EQ(del.body, "");
  EXPECT_EQ(
      Do("DELETE", "/api/ocloudNotifications/v2/subscriptions/" + id).status,
      404);
  Answer del1 =
      Do("DELETE", "/api/ocloudNotifications/v1/subscriptions/" + id1);
  EXPECT_EQ(del1.status, 200);
  EXPECT_EQ(del1.j["status"], "OK");
  EXPECT_EQ(
      Do("DELETE", "/api/ocloudNotifications/v1/subscriptions/" + id1).status,
      400);

  SubscribeV2(kLock, subscriber_.Url("/ok"));
  SubscribeV2(kClass, subscriber_.Url("/ok"));
  EXPECT_EQ(Do("DELETE", "/api/ocloudNotifications/v2/subscriptions").status,
            204);
  EXPECT_THAT(store_->ListSubscriptions(), IsEmpty());
  SubscribeV1(kLock, subscriber_.Url("/ok"));
  Answer all = Do("DELETE", "/api/ocloudNotifications/v1/subscriptions");
  EXPECT_EQ(all.status, 200);
  EXPECT_EQ(all.j["status"], "deleted all subscriptions");
  EXPECT_THAT(store_->ListSubscriptions(), IsEmpty());
}

TEST_F(RestApiTest, PublishersInBothShapes) {
  Answer v2 = Do("GET", "/api/ocloudNotifications/v2/publishers");
  ASSERT_EQ(v2.status, 200);
  ASSERT_THAT(v2.j, SizeIs(2));
  EXPECT_EQ(v2.j[0]["ResourceAddress"], kClass);
  EXPECT_EQ(v2.j[0]["SubscriptionId"], publisher_ids_[kClass]);
  EXPECT_EQ(v2.j[0]["EndpointUri"], kBase);
  Answer v1 = Do(
      "GET", "/api/ocloudNotifications/v1/publishers/" + publisher_ids_[kLock]);
  ASSERT_EQ(v1.status, 200);
  EXPECT_EQ(v1.j["resource"], kLock);
  EXPECT_EQ(v1.j["id"], publisher_ids_[kLock]);
  EXPECT_EQ(v1.j["uriLocation"], std::string(kBase) +
                                     "/api/ocloudNotifications/v1/publishers/" +
                                     publisher_ids_[kLock]);
  EXPECT_EQ(Do("GET", "/api/ocloudNotifications/v2/publishers/nope").status,
            404);
  EXPECT_EQ(Do("GET", "/api/ocloudNotifications/v1/publishers/nope").status,
            400);
}

TEST_F(RestApiTest, CurrentStateAsksTheSourceLoop) {
  Answer v2 = Do("GET", std::string("/api/ocloudNotifications/v2") + kLock +
                            "/CurrentState");
  ASSERT_EQ(v2.status, 200) << v2.body;
  EXPECT_EQ(v2.j["specversion"], "1.0");
  EXPECT_EQ(v2.j["data"]["values"][0]["ResourceAddress"], kLock);
  EXPECT_EQ(v2.j["data"]["values"][0]["value"], "LOCKED");
  Answer v1 = Do("GET", std::string("/api/ocloudNotifications/v1") + kLock +
                            "/CurrentState");
  ASSERT_EQ(v1.status, 200);
  EXPECT_EQ(v1.j["data"]["values"][0]["resource"], kLock);
  // A publisher whose source has no state for it; an unknown resource.
  EXPECT_EQ(Do("GET", std::string("/api/ocloudNotifications/v2") + kClass +
                          "/CurrentState")
                .status,
            404);
  EXPECT_EQ(
      Do("GET", "/api/ocloudNotifications/v2/cluster/x/CurrentState").status,
      404);
  EXPECT_EQ(
      Do("GET", "/api/ocloudNotifications/v1/cluster/x/CurrentState").status,
      400);
  plugins_.Remove("ptp");
  EXPECT_EQ(Do("GET", std::string("/api/ocloudNotifications/v2") + kLock +
                          "/CurrentState")
                .status,
            503);
}

TEST_F(RestApiTest, CreateEventRoutesToSubscribers) {
  ASSERT_EQ(SubscribeV1(kLock, subscriber_.Url("/ok")).status, 201);
  const json event = {{"id", publisher_ids_[kLock]},
                      {"type", events::kLockStateEventType},
                      {"time", "2026-11-22T04:50:00.123456789Z"},
                      {"data",
                       {{"version", "v1"},
                        {"values",
                         {{{"resource", kLock},
                           {"dataType", "notification"},
                           {"valueType", "enumeration"},
                           {"value", "HOLDOVER"}}}}}}};
  Answer a =
      Do("POST", "/api/ocloudNotifications/v1/create/event", event.dump());
  EXPECT_EQ(a.status, 202) << a.body;
  EXPECT_EQ(a.j["status"], "Event sent");
  std::vector<OutboxRow> rows =
      store_->DueDeliveries(absl::InfiniteFuture(), {}, 10);
  ASSERT_THAT(rows, SizeIs(1));
  json body = json::parse(rows[0].body, nullptr, false);
  EXPECT_EQ(body["data"]["values"][0]["value"], "HOLDOVER");
  EXPECT_EQ(body["time"], "2026-11-22T04:50:00.123456789Z");

  EXPECT_EQ(Do("POST", "/api/ocloudNotifications/v1/create/event", "{").status,
            400);
  json unknown = event;
  unknown["id"] = "nope";
  EXPECT_EQ(
      Do("POST", "/api/ocloudNotifications/v1/create/event", unknown.dump())
          .status,
      400);
  json wrong_type = event;
  wrong_type["type"] = "event.other";
  EXPECT_EQ(
      Do("POST", "/api/ocloudNotifications/v1/create/event", wrong_type.dump())
          .status,
      400);
  EXPECT_EQ(store_->OutboxDepth(), 1u);
}

}  // namespace
}  // namespace loophost::host
