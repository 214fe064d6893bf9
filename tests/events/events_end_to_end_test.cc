// The event framework end to end with the real binaries: loophost, loop-ptp
// (reading a log file the test writes) and loop-http out of process, and real
// loopback HTTP subscribers (httplib servers on port 0). What subscribers get
// is compared with `loop-ptp --replay` of the same lines. Faults: loop-http
// killed mid-stream, a subscriber down for a minute, loophost killed and
// restarted; bad requests through the real REST API; metrics through promtool.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "tests/testing/loophost_process.h"

namespace loophost::testing {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kNode[] = "lh-test-node";
constexpr absl::Duration kWait = absl::Seconds(60);

std::string Resource(const std::string& suffix) {
  return absl::StrCat("/cluster/node/", kNode, suffix);
}
const std::string kLockState = Resource("/sync/ptp-status/lock-state");
const std::string kSyncState = Resource("/sync/sync-status/sync-state");

// A loopback subscriber: answers every POST with 204 and keeps, per path, the
// JSON of every non-empty body in arrival order. Down() closes the port
// (connections are refused); Up() serves on the same port again. FailEvery(n)
// answers every n-th non-empty POST 503 instead, and does not keep it.
class Subscriber {
 public:
  Subscriber() { EXPECT_TRUE(Up()); }
  ~Subscriber() { Down(); }

  bool Up() {
    auto server = std::make_unique<httplib::Server>();
    server->Post(
        ".*", [this](const httplib::Request& req, httplib::Response& res) {
          res.status = 204;
          if (req.body.empty()) return;
          absl::MutexLock lock(&mu_);
          if (fail_every_ > 0 && ++posted_ % fail_every_ == 0) {
            res.status = 503;
            return;
          }
          posts_[req.path].push_back(json::parse(req.body, nullptr, false));
        });
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (true) {
      if (port_ == 0) {
        port_ = server->bind_to_any_port("127.0.0.1");
        if (port_ > 0) break;
      } else if (server->bind_to_port("127.0.0.1", port_)) {
        break;
      }
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(50));  // the old socket lingering
    }
    server_ = std::move(server);
    thread_ = std::thread([s = server_.get()] { s->listen_after_bind(); });
    return true;
  }
  void Down() {
    if (server_ == nullptr) return;
    server_->stop();
    thread_.join();
    server_.reset();
  }
  void FailEvery(int n) {
    absl::MutexLock lock(&mu_);
    fail_every_ = n;
  }
  std::string Url(const std::string& path) const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }
  std::vector<json> Events(const std::string& path) const {
    absl::MutexLock lock(&mu_);
    auto it = posts_.find(path);
    return it == posts_.end() ? std::vector<json>{} : it->second;
  }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  mutable absl::Mutex mu_;
  std::map<std::string, std::vector<json>> posts_ ABSL_GUARDED_BY(mu_);
  int fail_every_ ABSL_GUARDED_BY(mu_) = 0;
  int posted_ ABSL_GUARDED_BY(mu_) = 0;
};

struct ApiAnswer {
  int status = 0;
  std::string body;
  json j;
};

ApiAnswer Api(const LoophostProcess& host, const std::string& method,
              const std::string& path, const std::string& body = "") {
  httplib::Client client(host.api_host(), host.api_port());
  client.set_read_timeout(std::chrono::seconds(10));
  httplib::Result r = method == "GET" ? client.Get(path)
                      : method == "DELETE"
                          ? client.Delete(path)
                          : client.Post(path, body, "application/json");
  ApiAnswer a;
  if (!r) return a;
  a.status = r->status;
  a.body = r->body;
  a.j = json::parse(r->body, nullptr, false);
  return a;
}

// An event reduced to what must match: type, source and values (v1 value keys
// mapped to v2's).
json Essence(const json& event) {
  json values = json::array();
  if (event.contains("data") && event["data"].contains("values")) {
    for (const json& v : event["data"]["values"]) {
      values.push_back(
          {{"ResourceAddress",
            v.value("ResourceAddress", v.value("resource", ""))},
           {"data_type", v.value("data_type", v.value("dataType", ""))},
           {"value_type", v.value("value_type", v.value("valueType", ""))},
           {"value", v.value("value", json()).is_string()
                         ? v["value"].get<std::string>()
                         : v.value("value", json()).dump()}});
    }
  }
  return {{"type", event.value("type", "")},
          {"source", event.value("source", "")},
          {"values", values}};
}

// Lines that move ptp4l's servo in and out of the thresholds `flips` times,
// one line a second of log time from `*t`.
std::vector<std::string> FlipLines(int flips, double* t) {
  std::vector<std::string> lines;
  for (int i = 0; i < flips; ++i) {
    const int offset = i % 2 == 0 ? 5 + i % 7 : 90000 + i;
    lines.push_back(absl::StrFormat(
        "ptp4l[%.3f]: [ptp4l.0.config] master offset %d s2 freq +12 path "
        "delay 100",
        *t, offset));
    *t += 1.0;
  }
  return lines;
}

class EventsEndToEndTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("lh-e2e-");
    ASSERT_THAT(dir, IsOk());
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    log_path_ = dir_->Join("ptp.log");
    std::ofstream(log_path_).flush();  // exists, empty: followed from here
  }

  // loophost with loop-ptp and loop-http as children, state in our own dir
  // (so a second loophost finds it), both plugins serving and the
  // publishers known.
  std::unique_ptr<LoophostProcess> StartHost(
      std::map<std::string, std::string> extra = {}) {
    std::map<std::string, std::string> env = {
        {"PTP_PLUGIN", "true"},
        {"PTP_PLUGIN_CMD", LH_LOOP_PTP_BINARY},
        {"HTTP_PLUGIN_CMD", LH_LOOP_HTTP_BINARY},
        {"PTP_LOG_FILE", log_path_},
        {"LOOPHOST_STATE_DIR", dir_->Join("state")},
        {"LOOPHOST_DEDUP_WINDOW", "0"},
        {"LOOPHOST_DELIVERY_BACKOFF_MAX", "1s"},
    };
    for (auto& [k, v] : extra) env[k] = v;
    LoophostOptions options;
    options.binary = LH_LOOPHOST_BINARY;
    options.env = env;
    auto host = LoophostProcess::Start(options);
    EXPECT_THAT(host, IsOk());
    if (!host.ok()) return nullptr;
    EXPECT_NE((*host)->api_port(), 0);
    EXPECT_TRUE((*host)->WaitFor(
        [&] {
          return (*host)->PluginState("ptp") == "serving" &&
                 (*host)->PluginState("http") == "serving";
        },
        kWait, "ptp and http serving"));
    EXPECT_TRUE((*host)->WaitFor(
        [&] {
          ApiAnswer a =
              Api(**host, "GET", "/api/ocloudNotifications/v2/publishers");
          return a.status == 200 && a.j.is_array() && a.j.size() >= 4;
        },
        kWait, "the PTP publishers known"));
    return std::move(*host);
  }

  void AppendLines(const std::vector<std::string>& lines) {
    std::ofstream out(log_path_, std::ios::app);
    for (const std::string& l : lines) out << l << "\n";
    out.flush();
    all_lines_.insert(all_lines_.end(), lines.begin(), lines.end());
  }

  // What `loop-ptp --replay` says these lines publish on `resource`.
  std::vector<json> Expected(const std::string& resource) {
    const std::string file = dir_->Join("replay.log");
    {
      std::ofstream out(file, std::ios::trunc);
      for (const std::string& l : all_lines_) out << l << "\n";
    }
    ChildOptions options;
    options.argv = {LH_LOOP_PTP_BINARY, "--replay", file, "--node", kNode};
    options.env = {"PATH=/usr/bin:/bin"};
    options.stdout_path = dir_->Join("replay.out");
    options.stderr_path = dir_->Join("replay.err");
    auto child = ChildProcess::Spawn(options);
    EXPECT_THAT(child, IsOk());
    if (!child.ok()) return {};
    auto status = (*child)->Wait(absl::Seconds(30));
    EXPECT_TRUE(status.ok() && status->ExitedWith(0))
        << ReadFileOrEmpty(dir_->Join("replay.err"));
    std::vector<json> out;
    for (absl::string_view line :
         absl::StrSplit(ReadFileOrEmpty(dir_->Join("replay.out")), '\n',
                        absl::SkipEmpty())) {
      json j = json::parse(line, nullptr, false);
      if (j.is_object() && j.value("source", "") == resource) {
        out.push_back(Essence(j));
      }
    }
    return out;
  }

  // Received events in order, a repeat of the same id (a resend) dropped;
  // fails the test if an id repeats after another event came in between.
  std::vector<json> Deduplicated(const std::vector<json>& events) {
    std::vector<json> out;
    std::set<std::string> seen;
    std::string last_id;
    for (const json& e : events) {
      const std::string id = e.value("id", "");
      if (id == last_id) continue;
      EXPECT_EQ(seen.count(id), 0u) << "event " << id << " out of order";
      seen.insert(id);
      last_id = id;
      out.push_back(Essence(e));
    }
    return out;
  }

  ApiAnswer SubscribeV2(const LoophostProcess& host,
                        const std::string& resource,
                        const std::string& endpoint) {
    return Api(
        host, "POST", "/api/ocloudNotifications/v2/subscriptions",
        json{{"ResourceAddress", resource}, {"EndpointUri", endpoint}}.dump());
  }
  ApiAnswer SubscribeV1(const LoophostProcess& host,
                        const std::string& resource,
                        const std::string& endpoint) {
    return Api(host, "POST", "/api/ocloudNotifications/v1/subscriptions",
               json{{"resource", resource}, {"endpointUri", endpoint}}.dump());
  }

  std::unique_ptr<TempDir> dir_;
  std::string log_path_;
  std::vector<std::string> all_lines_;
  double log_time_ = 1000.0;
  Subscriber subscriber_;
};

TEST_F(EventsEndToEndTest, V1AndV2SubscribersGetTheStateChangesInOrder) {
  auto host = StartHost();
  ASSERT_NE(host, nullptr);
  ApiAnswer v2 = SubscribeV2(*host, kLockState, subscriber_.Url("/v2"));
  ASSERT_EQ(v2.status, 201) << v2.body;
  ApiAnswer v1 = SubscribeV1(*host, kSyncState, subscriber_.Url("/v1"));
  ASSERT_EQ(v1.status, 201) << v1.body;
  // The v2 check POSTed the current state; what comes after is the stream.
  const size_t v2_before = subscriber_.Events("/v2").size();

  AppendLines(FlipLines(6, &log_time_));
  AppendLines({absl::StrFormat(
      "ptp4l[%.3f]: [ptp4l.0.config] CLOCK_CLASS_CHANGE 248", log_time_)});
  const std::vector<json> lock = Expected(kLockState);
  const std::vector<json> sync = Expected(kSyncState);
  ASSERT_FALSE(lock.empty());
  ASSERT_TRUE(host->WaitFor(
      [&] {
        return subscriber_.Events("/v2").size() >= v2_before + lock.size() &&
               subscriber_.Events("/v1").size() >= sync.size();
      },
      kWait, "every state change delivered"));
  std::vector<json> got2 = subscriber_.Events("/v2");
  got2.erase(got2.begin(), got2.begin() + v2_before);
  EXPECT_EQ(Deduplicated(got2), lock);
  EXPECT_EQ(Deduplicated(subscriber_.Events("/v1")), sync);
  // Shapes: v2 is a CloudEvent with specversion, v1 the seed's.
  EXPECT_EQ(got2[0]["specversion"], "1.0");
  EXPECT_EQ(got2[0]["type"], "event.sync.ptp-status.ptp-state-change");
  EXPECT_TRUE(got2[0]["data"]["values"][0]["value"].is_string());
  if (!sync.empty()) {
    const json first_v1 = subscriber_.Events("/v1")[0];
    EXPECT_TRUE(first_v1["data"]["values"][0].contains("resource"))
        << first_v1.dump();
  }
}

// The first part of a recorded ptp4l log (up to the port loss whose holdover
// timer runs on the log's clock in --replay but on the real one here).
TEST_F(EventsEndToEndTest, ARecordedLogArrivesWithTheRightTypesAndValues) {
  auto host = StartHost();
  ASSERT_NE(host, nullptr);
  ASSERT_EQ(SubscribeV2(*host, kLockState, subscriber_.Url("/lock")).status,
            201);
  ASSERT_EQ(SubscribeV2(*host, kSyncState, subscriber_.Url("/sync")).status,
            201);
  ASSERT_EQ(SubscribeV1(*host, kLockState, subscriber_.Url("/v1lock")).status,
            201);
  const size_t lock_before = subscriber_.Events("/lock").size();
  const size_t sync_before = subscriber_.Events("/sync").size();
  std::vector<std::string> lines =
      absl::StrSplit(ReadFileOrEmpty(std::string(LH_PTP_TEST_DATA) +
                                     "/B-backup-master/slave.log"),
                     '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 42u);
  lines.resize(42);
  AppendLines(lines);
  const std::vector<json> lock = Expected(kLockState);
  const std::vector<json> sync = Expected(kSyncState);
  ASSERT_GE(lock.size(), 4u);
  auto since = [&](const std::string& path, size_t before) {
    std::vector<json> got = subscriber_.Events(path);
    got.erase(got.begin(), got.begin() + std::min(before, got.size()));
    return got;
  };
  ASSERT_TRUE(host->WaitFor(
      [&] {
        return since("/lock", lock_before).size() >= lock.size() &&
               since("/sync", sync_before).size() >= sync.size() &&
               subscriber_.Events("/v1lock").size() >= lock.size();
      },
      kWait, "the log's state changes delivered"));
  EXPECT_EQ(Deduplicated(since("/lock", lock_before)), lock);
  EXPECT_EQ(Deduplicated(since("/sync", sync_before)), sync);
  EXPECT_EQ(Deduplicated(subscriber_.Events("/v1lock")), lock);
  // Values are strings: the state, then the offset as decimal64.3.
  const json first = since("/lock", lock_before)[0];
  EXPECT_EQ(first["data"]["values"][0]["value_type"], "enumeration");
  EXPECT_EQ(first["data"]["values"][1]["value_type"], "decimal64.3");
  EXPECT_TRUE(first["data"]["values"][1]["value"].is_string());
}

TEST_F(EventsEndToEndTest, LoopHttpKilledMidStreamLosesNothing) {
  auto host = StartHost();
  ASSERT_NE(host, nullptr);
  ASSERT_EQ(SubscribeV2(*host, kLockState, subscriber_.Url("/a")).status, 201);
  const size_t before = subscriber_.Events("/a").size();
  AppendLines(FlipLines(400, &log_time_));
  ASSERT_TRUE(host->WaitFor(
      [&] { return subscriber_.Events("/a").size() >= before + 5; }, kWait,
      "deliveries under way"));
  const pid_t http = host->PluginPid("http");
  ASSERT_GT(http, 0);
  ASSERT_EQ(::kill(http, SIGKILL), 0);
  AppendLines(FlipLines(40, &log_time_));
  ASSERT_TRUE(host->WaitFor(
      [&] {
        return host->PluginState("http") == "serving" &&
               host->PluginPid("http") != http;
      },
      kWait, "loop-http restarted"));
  const std::vector<json> expected = Expected(kLockState);
  ASSERT_TRUE(host->WaitFor(
      [&] {
        std::vector<json> got = subscriber_.Events("/a");
        got.erase(got.begin(), got.begin() + before);
        return Deduplicated(got).size() >= expected.size();
      },
      kWait, "every event after the restart"));
  std::vector<json> got = subscriber_.Events("/a");
  got.erase(got.begin(), got.begin() + before);
  EXPECT_EQ(Deduplicated(got), expected);
  // The host saw the transport's stream end and opened a new one.
  EXPECT_THAT(host->LogLines({"delivery stream closed"}), Not(IsEmpty()));
}

// Every 4th POST fails while the transport holds a window of the subscriber's
// deliveries: what it accepted is every event, in order, each exactly once
// (the ones behind a failure were skipped and sent again, not reordered).
TEST_F(EventsEndToEndTest, AFlakySubscriberGetsEverythingInOrderExactlyOnce) {
  auto host = StartHost();
  ASSERT_NE(host, nullptr);
  ASSERT_EQ(SubscribeV2(*host, kLockState, subscriber_.Url("/a")).status, 201);
  const size_t before = subscriber_.Events("/a").size();
  subscriber_.FailEvery(4);
  AppendLines(FlipLines(40, &log_time_));
  const std::vector<json> expected = Expected(kLockState);
  ASSERT_GE(expected.size(), 40u);
  ASSERT_TRUE(host->WaitFor(
      [&] {
        return subscriber_.Events("/a").size() >= before + expected.size();
      },
      kWait, "every event accepted"));
  std::vector<json> got = subscriber_.Events("/a");
  got.erase(got.begin(), got.begin() + before);
  std::vector<json> essences;
  for (const json& e : got) essences.push_back(Essence(e));
  EXPECT_EQ(essences, expected);
  EXPECT_THAT(host->LogLines({"delivery failed; kept for retry"}),
              Not(IsEmpty()));
}

TEST_F(EventsEndToEndTest, SubscriberDownForAMinuteGetsEverythingAfterwards) {
  const char* seconds = std::getenv("LH_SUBSCRIBER_DOWN_S");
  const absl::Duration down = absl::Seconds(seconds ? std::atoi(seconds) : 60);
  auto host = StartHost();
  ASSERT_NE(host, nullptr);
  ASSERT_EQ(SubscribeV2(*host, kLockState, subscriber_.Url("/a")).status, 201);
  const size_t before = subscriber_.Events("/a").size();
  subscriber_.Down();
  const absl::Time down_since = absl::Now();
  AppendLines(FlipLines(20, &log_time_));
  const std::vector<json> expected = Expected(kLockState);
  ASSERT_TRUE(host->WaitFor(
      [&] {
        auto depth = host->Metric("loophost_outbox_depth", {});
        return depth && *depth >= static_cast<double>(expected.size());
      },
      kWait, "all of it waiting in the outbox"));
  // The rest of the minute down.
  while (absl::Now() - down_since < down) {
    ASSERT_TRUE(host->running());
    absl::SleepFor(absl::Seconds(1));  // the outage itself, not a wait
  }
  ASSERT_TRUE(subscriber_.Up());
  ASSERT_TRUE(host->WaitFor(
      [&] {
        return subscriber_.Events("/a").size() >= before + expected.size();
      },
      kWait, "everything after the outage"));
  std::vector<json> got = subscriber_.Events("/a");
  got.erase(got.begin(), got.begin() + before);
  EXPECT_EQ(Deduplicated(got), expected);
  EXPECT_TRUE(host->WaitFor(
      [&] {
        auto depth = host->Metric("loophost_outbox_depth", {});
        return depth && *depth == 0;
      },
      kWait, "outbox empty"));
}

TEST_F(EventsEndToEndTest, HostKilledAndRestartedDeliversWhatWasUndelivered) {
  std::string id;
  size_t before = 0;
  std::vector<json> expected;
  {
    auto host = StartHost();
    ASSERT_NE(host, nullptr);
    ApiAnswer a = SubscribeV2(*host, kLockState, subscriber_.Url("/a"));
    ASSERT_EQ(a.status, 201) << a.body;
    id = a.j["SubscriptionId"];
    before = subscriber_.Events("/a").size();
    subscriber_.Down();
    AppendLines(FlipLines(10, &log_time_));
    expected = Expected(kLockState);
    ASSERT_TRUE(host->WaitFor(
        [&] {
          auto depth = host->Metric("loophost_outbox_depth", {});
          return depth && *depth >= static_cast<double>(expected.size());
        },
        kWait, "all of it in the outbox"));
    ASSERT_EQ(::kill(host->pid(), SIGKILL), 0);
    auto status = host->Stop(absl::Seconds(10));
    ASSERT_THAT(status, IsOk());
    EXPECT_FALSE(status->exited);
  }
  ASSERT_TRUE(subscriber_.Up());
  auto host = StartHost();
  ASSERT_NE(host, nullptr);
  ApiAnswer got_sub =
      Api(*host, "GET", "/api/ocloudNotifications/v2/subscriptions/" + id);
  EXPECT_EQ(got_sub.status, 200) << got_sub.body;
  ASSERT_TRUE(host->WaitFor(
      [&] {
        return subscriber_.Events("/a").size() >= before + expected.size();
      },
      kWait, "the undelivered events after the restart"));
  std::vector<json> got = subscriber_.Events("/a");
  got.erase(got.begin(), got.begin() + before);
  EXPECT_EQ(Deduplicated(got), expected);
}

TEST_F(EventsEndToEndTest, BadRequestsGetTheirStatusCodesAndNothingIsStored) {
  auto host = StartHost();
  ASSERT_NE(host, nullptr);
  const std::string path = "/api/ocloudNotifications/v2/subscriptions";
  struct Case {
    std::string body;
    int status;
  };
  const std::vector<Case> cases = {
      {"{not json", 400},
      {json{{"ResourceAddress", kLockState}}.dump(), 400},
      {json{{"EndpointUri", subscriber_.Url("/x")}}.dump(), 400},
      {json{{"ResourceAddress", kLockState}, {"EndpointUri", "ftp://h/x"}}
           .dump(),
       400},
      {json{{"ResourceAddress", Resource("/nope")},
            {"EndpointUri", subscriber_.Url("/x")}}
           .dump(),
       404},
      {json{{"ResourceAddress", kLockState},
            {"EndpointUri", subscriber_.Url("/x")},
            {"pad", std::string(256 * 1024, 'x')}}
           .dump(),
       413},
  };
  for (const Case& c : cases) {
    ApiAnswer a = Api(*host, "POST", path, c.body);
    EXPECT_EQ(a.status, c.status) << c.body.substr(0, 80) << ": " << a.body;
    EXPECT_TRUE(a.j.contains("error")) << a.body;
  }
  EXPECT_EQ(Api(*host, "GET", path).j, json::array());
  ASSERT_EQ(SubscribeV2(*host, kLockState, subscriber_.Url("/x")).status, 201);
  EXPECT_EQ(SubscribeV2(*host, kLockState, subscriber_.Url("/x")).status, 409);
  EXPECT_THAT(Api(*host, "GET", path).j, SizeIs(1));
  EXPECT_EQ(Api(*host, "GET", "/api/ocloudNotifications/v1/health").body, "OK");
  ApiAnswer state =
      Api(*host, "GET",
          "/api/ocloudNotifications/v2" + kLockState + "/CurrentState");
  EXPECT_EQ(state.status, 200) << state.body;
  EXPECT_EQ(state.j["source"], kLockState);
}

TEST_F(EventsEndToEndTest, MetricsAreInTheMergedExpositionAndPassPromtool) {
  auto host = StartHost();
  ASSERT_NE(host, nullptr);
  ASSERT_EQ(SubscribeV2(*host, kLockState, subscriber_.Url("/a")).status, 201);
  AppendLines(FlipLines(2, &log_time_));
  // Every family gets a series: a CurrentState request, an event posted to
  // create/event.
  EXPECT_EQ(Api(*host, "GET",
                "/api/ocloudNotifications/v2" + kLockState + "/CurrentState")
                .status,
            200);
  ApiAnswer publishers =
      Api(*host, "GET", "/api/ocloudNotifications/v1/publishers");
  std::string publisher_id;
  for (const json& p : publishers.j) {
    if (p.value("resource", "") == kLockState) publisher_id = p.value("id", "");
  }
  ASSERT_FALSE(publisher_id.empty()) << publishers.body;
  ApiAnswer posted =
      Api(*host, "POST", "/api/ocloudNotifications/v1/create/event",
          json{{"id", publisher_id},
               {"data",
                {{"values",
                  {{{"resource", kLockState},
                    {"dataType", "notification"},
                    {"valueType", "enumeration"},
                    {"value", "HOLDOVER"}}}}}}}
              .dump());
  EXPECT_EQ(posted.status, 202) << posted.body;
  ASSERT_TRUE(host->WaitFor(
      [&] {
        auto sent = host->Metric("cne_transport_events_published",
                                 {{"status", "success"}});
        auto depth = host->Metric("loophost_outbox_depth", {});
        return sent && *sent >= 1 && depth;
      },
      kWait, "a delivery counted, the outbox gauge set"));
  auto metrics = host->Get("/metrics");
  ASSERT_THAT(metrics, IsOk());
  for (const char* family :
       {"cne_api_events_published", "cne_api_publishers",
        "cne_api_subscriptions", "cne_transport_events_published",
        "cne_transport_events_received", "cne_transport_sender",
        "cne_transport_receiver", "cne_events_ack", "cne_status_check_received",
        "loophost_outbox_depth", "loophost_outbox_oldest_age_seconds",
        "loophost_deliveries_total"}) {
    EXPECT_THAT(metrics->body, HasSubstr(absl::StrCat("# TYPE ", family)))
        << family;
  }
  EXPECT_EQ(host->Metric("cne_api_subscriptions", {{"status", "active"}}), 1);
  // Host and transport loop export no series twice.
  std::set<std::string> series;
  for (absl::string_view line :
       absl::StrSplit(metrics->body, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    const std::string key(line.substr(0, line.rfind(' ')));
    EXPECT_TRUE(series.insert(key).second) << "twice: " << key;
  }
  if (std::string(LH_PROMTOOL).empty()) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  const std::string input = dir_->Join("metrics.txt");
  std::ofstream(input) << metrics->body;
  ChildOptions options;
  options.argv = {"/bin/sh", "-c",
                  absl::StrCat(LH_PROMTOOL, " check metrics < '", input, "'")};
  options.env = {"PATH=/usr/bin:/bin"};
  options.stdout_path = dir_->Join("promtool.out");
  options.stderr_path = dir_->Join("promtool.out");
  auto child = ChildProcess::Spawn(options);
  ASSERT_THAT(child, IsOk());
  auto status = (*child)->Wait(absl::Seconds(30));
  ASSERT_THAT(status, IsOk());
  const std::string out = ReadFileOrEmpty(dir_->Join("promtool.out"));
  // Problems are allowed only on names kept for compatibility
  // (cloud-event-proxy's cne_*, linuxptp-daemon's openshift_ptp_*).
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StartsWith(line, "cne_") ||
                absl::StartsWith(line, "openshift_ptp_"))
        << line;
  }
}

TEST(EventsConfigTest, TransportHostWithAnotherSchemeIsAStartupError) {
  auto dir = TempDir::Create("lh-e2e-cfg-");
  ASSERT_THAT(dir, IsOk());
  ChildOptions options;
  options.argv = {LH_LOOPHOST_BINARY};
  options.env = {"PATH=/usr/bin:/bin", "TRANSPORT_HOST=amqp://localhost:5672",
                 "LOOPHOST_STATE_DIR=" + dir->Join("state")};
  RunResult run = RunToExit(std::move(options), *dir, absl::Seconds(20));
  EXPECT_TRUE(run.status.ExitedWith(2)) << run.status.ToString();
  const std::string& err = run.err;
  EXPECT_THAT(err, HasSubstr("TRANSPORT_HOST=amqp://localhost:5672"));
  EXPECT_THAT(err, HasSubstr("\"amqp\""));
  EXPECT_THAT(
      std::vector<std::string>(absl::StrSplit(err, '\n', absl::SkipEmpty())),
      SizeIs(1));
}

TEST(EventsConfigTest, ApiAddressInUseIsAClearError) {
  auto dir = TempDir::Create("lh-e2e-cfg-");
  ASSERT_THAT(dir, IsOk());
  // Hold a kernel-chosen port, listening.
  httplib::Server holder;
  const int port = holder.bind_to_any_port("127.0.0.1");
  ASSERT_GT(port, 0);
  ChildOptions options;
  options.argv = {LH_LOOPHOST_BINARY};
  options.env = {"PATH=/usr/bin:/bin", "LOOPHOST_METRICS_ADDR=127.0.0.1:0",
                 absl::StrCat("LOOPHOST_API_ADDR=127.0.0.1:", port),
                 "LOOPHOST_STATE_DIR=" + dir->Join("state")};
  RunResult run = RunToExit(std::move(options), *dir, absl::Seconds(20));
  EXPECT_TRUE(run.status.ExitedWith(1)) << run.status.ToString();
  EXPECT_THAT(run.err,
              HasSubstr(absl::StrCat(
                  "cannot listen on LOOPHOST_API_ADDR=127.0.0.1:", port)));
}

}  // namespace
}  // namespace loophost::testing
