// EventRouter with a fake EventSource on a real gRPC server and a real
// EventStore: routing per subscription and API version, type checks, dedup,
// acknowledgement only after the outbox write, and resuming after a restart
// of either side.
#include "host/event_router.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "events/ptp_events.h"
#include "prometheus/text_serializer.h"
#include "tests/testing/child_process.h"
#include "tests/testing/event_fakes.h"

namespace loophost::host {
namespace {

namespace pb = ::loophost::v1;
using ::loophost::testing::FakeEventSource;
using ::loophost::testing::FakeRolePlugins;
using ::loophost::testing::FakeServer;
using ::loophost::testing::IsOk;
using ::loophost::testing::MakeEvent;
using ::loophost::testing::TempDir;
using ::loophost::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr char kLock[] = "/cluster/node/n1/sync/ptp-status/lock-state";
constexpr char kClass[] = "/cluster/node/n1/sync/ptp-status/clock-class";
constexpr absl::Duration kWait = absl::Seconds(10);

std::vector<pb::Publisher> Publishers() {
  std::vector<pb::Publisher> out(2);
  out[0].set_resource_address(kLock);
  out[0].set_event_type(events::kLockStateEventType);
  out[1].set_resource_address(kClass);
  out[1].set_event_type(events::kClockClassEventType);
  return out;
}

class EventRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("lh-router-");
    ASSERT_THAT(dir, IsOk());
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    OpenStore();
    metrics_ = std::make_unique<EventMetrics>(registry_);
    source_ = std::make_unique<FakeEventSource>(Publishers());
    server_ = std::make_unique<FakeServer>(source_.get());
    plugins_.Set("ptp", {kEventSourceKind}, server_->channel());
  }
  void TearDown() override {
    router_.reset();
    server_.reset();
  }

  void OpenStore() {
    auto store = EventStore::Open(dir_->Join("events.db"));
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
  }

  void StartRouter(absl::Duration dedup = absl::Seconds(1)) {
    EventRouterOptions options;
    options.dedup_window = dedup;
    options.retry_initial = absl::Milliseconds(20);
    options.retry_max = absl::Milliseconds(200);
    options.api_base = "http://localhost:9085";
    router_ = std::make_unique<EventRouter>(
        options, *store_, plugins_, *metrics_,
        [this](const std::vector<std::string>&) { ++enqueued_; });
    router_->Start();
  }

  SubscriptionRecord Subscribe(const std::string& endpoint,
                               const std::string& resource, int version) {
    SubscriptionRecord s;
    s.api_version = version;
    s.resource_address = resource;
    s.endpoint = endpoint;
    auto added = store_->AddSubscription(s);
    EXPECT_THAT(added, IsOk());
    return added.ok() ? *added : s;
  }

  // "Restarts" the source loop: a new server (generation) that carries over
  // the events it still holds, as the PTP loop persists them.
  void RestartSource() {
    auto next = std::make_unique<FakeEventSource>(Publishers(), source_->Held(),
                                                  source_->next_sequence());
    auto next_server = std::make_unique<FakeServer>(next.get());
    server_->Shutdown();
    plugins_.Set("ptp", {kEventSourceKind}, next_server->channel());
    old_.push_back(std::move(source_));
    old_servers_.push_back(std::move(server_));
    source_ = std::move(next);
    server_ = std::move(next_server);
  }

  std::vector<std::string> Bodies() {
    std::vector<std::string> out;
    for (const OutboxRow& row :
         store_->DueDeliveries(absl::InfiniteFuture(), {}, 1000)) {
      out.push_back(row.body);
    }
    return out;
  }

  std::string Metrics() {
    return prometheus::TextSerializer().Serialize(registry_.Collect());
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<EventStore> store_;
  prometheus::Registry registry_;
  std::unique_ptr<EventMetrics> metrics_;
  FakeRolePlugins plugins_;
  std::unique_ptr<FakeEventSource> source_;
  std::unique_ptr<FakeServer> server_;
  std::vector<std::unique_ptr<FakeEventSource>> old_;
  std::vector<std::unique_ptr<FakeServer>> old_servers_;
  std::unique_ptr<EventRouter> router_;
  std::atomic<int> enqueued_{0};
};

TEST_F(EventRouterTest, StoresPublishersAndRoutesPerSubscriptionAndVersion) {
  SubscriptionRecord v1 = Subscribe("http://127.0.0.1:1/v1", kLock, 1);
  SubscriptionRecord v2 = Subscribe("http://127.0.0.1:1/v2", kLock, 2);
  Subscribe("http://127.0.0.1:1/other", kClass, 2);
  StartRouter();
  const uint64_t seq = source_->Push(
      MakeEvent("e1", kLock, events::kLockStateEventType, "LOCKED"));
  ASSERT_TRUE(source_->WaitAcked(seq, kWait));

  EXPECT_THAT(store_->ListPublishers(), SizeIs(2));
  EXPECT_EQ(store_->FindPublisherByResource(kLock)->source_plugin, "ptp");
  EXPECT_EQ(store_->FindPublisherByResource(kLock)->endpoint_uri,
            "http://localhost:9085");
  EXPECT_EQ(store_->SourceCursor("ptp"), seq);
  std::vector<OutboxRow> rows =
      store_->DueDeliveries(absl::InfiniteFuture(), {}, 10);
  ASSERT_THAT(rows, SizeIs(2));
  for (const OutboxRow& row : rows) {
    EXPECT_EQ(row.event_id, "e1");
    auto j = nlohmann::json::parse(row.body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << row.body;
    EXPECT_EQ(j["id"], "e1");
    EXPECT_EQ(j["type"], events::kLockStateEventType);
    if (row.subscription_id == v1.id) {
      // The seed's v1 shape.
      EXPECT_EQ(j["data"]["values"][0]["resource"], kLock);
      EXPECT_EQ(j["data"]["values"][0]["value"], "LOCKED");
    } else {
      EXPECT_EQ(row.subscription_id, v2.id);
      EXPECT_EQ(j["specversion"], "1.0");
      EXPECT_EQ(j["source"], kLock);
      EXPECT_EQ(j["data"]["values"][0]["ResourceAddress"], kLock);
      EXPECT_EQ(j["data"]["values"][0]["value"], "LOCKED");
    }
  }
  EXPECT_GE(enqueued_.load(), 1);
  const std::string metrics = Metrics();
  EXPECT_THAT(
      metrics,
      HasSubstr(std::string("cne_events_ack{status=\"success\",type=\"") +
                events::kLockStateEventType + "\"} 1"));
  EXPECT_THAT(metrics,
              HasSubstr(std::string("cne_transport_receiver{address=\"") +
                        kLock + "\",status=\"active\"} 1"));
}

TEST_F(EventRouterTest, RejectsATypeThePublisherDidNotRegister) {
  Subscribe("http://127.0.0.1:1/a", kLock, 2);
  StartRouter();
  source_->Push(MakeEvent("bad", kLock, "event.other", "X"));
  source_->Push(MakeEvent("unknown", "/cluster/node/n1/nope",
                          events::kLockStateEventType, "X"));
  // v1's clock-class type is an accepted alias.
  Subscribe("http://127.0.0.1:1/a", kClass, 2);
  const uint64_t last = source_->Push(
      MakeEvent("alias", kClass, events::kClockClassEventTypeV1, "248"));
  ASSERT_TRUE(source_->WaitAcked(last, kWait));
  std::vector<OutboxRow> rows =
      store_->DueDeliveries(absl::InfiniteFuture(), {}, 10);
  ASSERT_THAT(rows, SizeIs(1));
  EXPECT_EQ(rows[0].event_id, "alias");
  EXPECT_EQ(store_->SourceCursor("ptp"), last);
  EXPECT_THAT(
      Metrics(),
      HasSubstr("cne_events_ack{status=\"failed\",type=\"event.other\"} 1"));
}

TEST_F(EventRouterTest, CoalescesIdenticalEventsInsideTheDedupWindow) {
  Subscribe("http://127.0.0.1:1/a", kLock, 2);
  StartRouter(absl::Seconds(1));
  const int64_t t0 = absl::ToUnixNanos(absl::Now());
  const int64_t ms = 1000000;
  source_->Push(
      MakeEvent("1", kLock, events::kLockStateEventType, "LOCKED", t0));
  // Same values 100 ms later: coalesced.
  source_->Push(MakeEvent("2", kLock, events::kLockStateEventType, "LOCKED",
                          t0 + 100 * ms));
  // A change goes through, and so does the change back.
  source_->Push(MakeEvent("3", kLock, events::kLockStateEventType, "FREERUN",
                          t0 + 200 * ms));
  source_->Push(MakeEvent("4", kLock, events::kLockStateEventType, "LOCKED",
                          t0 + 300 * ms));
  // Identical, but outside the window of the last one that went through.
  const uint64_t last = source_->Push(MakeEvent(
      "5", kLock, events::kLockStateEventType, "LOCKED", t0 + 1500 * ms));
  ASSERT_TRUE(source_->WaitAcked(last, kWait));
  // Only the head per subscription is due: walk the outbox.
  std::vector<std::string> ids;
  while (true) {
    auto due = store_->DueDeliveries(absl::InfiniteFuture(), {}, 1);
    if (due.empty()) break;
    ids.push_back(due[0].event_id);
    ASSERT_THAT(store_->MarkDelivered(due[0].id), IsOk());
  }
  EXPECT_THAT(ids, ElementsAre("1", "3", "4", "5"));
  EXPECT_THAT(Metrics(),
              HasSubstr("loophost_events_deduplicated_total{source=\"ptp\""));
}

TEST_F(EventRouterTest, ResumesAfterTheSourceRestartsWithoutLossOrRepeats) {
  Subscribe("http://127.0.0.1:1/a", kLock, 2);
  StartRouter(absl::ZeroDuration());
  for (int i = 1; i <= 3; ++i) {
    source_->Push(MakeEvent("e" + std::to_string(i), kLock,
                            events::kLockStateEventType, std::to_string(i)));
  }
  ASSERT_TRUE(source_->WaitAcked(3, kWait));
  // Events the router has not seen yet survive in the restarted loop.
  for (int i = 4; i <= 5; ++i) {
    source_->Push(MakeEvent("e" + std::to_string(i), kLock,
                            events::kLockStateEventType, std::to_string(i)));
  }
  RestartSource();
  for (int i = 6; i <= 7; ++i) {
    source_->Push(MakeEvent("e" + std::to_string(i), kLock,
                            events::kLockStateEventType, std::to_string(i)));
  }
  ASSERT_TRUE(source_->WaitAcked(7, kWait));
  EXPECT_EQ(store_->OutboxDepth(), 7u);
  EXPECT_EQ(store_->SourceCursor("ptp"), 7u);
  // The new generation was asked for what came after the stored cursor.
  ASSERT_FALSE(source_->stream_requests().empty());
  EXPECT_GE(source_->stream_requests()[0], 3u);
}

TEST_F(EventRouterTest, ResumesAfterTheHostRestarts) {
  Subscribe("http://127.0.0.1:1/a", kLock, 2);
  StartRouter(absl::ZeroDuration());
  source_->Push(MakeEvent("e1", kLock, events::kLockStateEventType, "1"));
  ASSERT_TRUE(source_->WaitAcked(1, kWait));
  router_->Stop();
  router_.reset();
  store_.reset();
  source_->Push(MakeEvent("e2", kLock, events::kLockStateEventType, "2"));
  OpenStore();
  StartRouter(absl::ZeroDuration());
  ASSERT_TRUE(source_->WaitAcked(2, kWait));
  EXPECT_EQ(store_->OutboxDepth(), 2u);
  EXPECT_THAT(source_->stream_requests(), ElementsAre(0u, 1u));
}

TEST_F(EventRouterTest, AcknowledgesOnlyWhatTheOutboxHolds) {
  Subscribe("http://127.0.0.1:1/a", kLock, 2);
  // The outbox refuses writes for a while (as a full disk would).
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(dir_->Join("events.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN "
                         "SELECT RAISE(ABORT, 'disk full'); END",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  StartRouter(absl::ZeroDuration());
  const uint64_t seq =
      source_->Push(MakeEvent("e1", kLock, events::kLockStateEventType, "1"));
  // The router keeps trying (it reopens the stream); nothing is acked.
  ASSERT_TRUE(WaitFor([&] { return source_->stream_requests().size() >= 2; },
                      kWait, "a second stream after the failed write"));
  EXPECT_EQ(source_->acked(), 0u);
  EXPECT_EQ(store_->OutboxDepth(), 0u);
  ASSERT_EQ(sqlite3_exec(db, "DROP TRIGGER refuse", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  ASSERT_TRUE(source_->WaitAcked(seq, kWait));
  EXPECT_EQ(store_->OutboxDepth(), 1u);
}

TEST_F(EventRouterTest, StartsOverWhenTheSourceLostItsNumbering) {
  Subscribe("http://127.0.0.1:1/a", kLock, 2);
  ASSERT_THAT(store_->SetSourceCursor("ptp", 50), IsOk());
  source_->set_ignore_after(true);
  StartRouter(absl::ZeroDuration());
  // A source that starts again at 1 answers "after 50" with 1, 2.
  source_->Push(MakeEvent("e1", kLock, events::kLockStateEventType, "1"));
  source_->Push(MakeEvent("e2", kLock, events::kLockStateEventType, "2"));
  ASSERT_TRUE(source_->WaitAcked(2, kWait));
  EXPECT_EQ(store_->OutboxDepth(), 2u);
  EXPECT_EQ(store_->SourceCursor("ptp"), 2u);
}

TEST_F(EventRouterTest, PublishRoutesAnApiEvent) {
  Subscribe("http://127.0.0.1:1/a", kLock, 1);
  StartRouter(absl::ZeroDuration());
  auto written = router_->Publish(
      MakeEvent("api-1", kLock, events::kLockStateEventType, "LOCKED"));
  ASSERT_THAT(written, IsOk());
  EXPECT_EQ(*written, 1);
  auto again = router_->Publish(
      MakeEvent("api-2", kLock, events::kLockStateEventType, "FREERUN"));
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(store_->SourceCursor(kApiSource), 2u);
  EXPECT_EQ(store_->OutboxDepth(), 2u);
}

}  // namespace
}  // namespace loophost::host
