// DeliveryDispatcher with a fake Transport on a real gRPC server and a real
// EventStore: per-subscriber order with a window of deliveries in flight, a
// slow subscriber not delaying others, backoff, retention, optional removal,
// and a transport restart that loses nothing.
#include "host/delivery_dispatcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "prometheus/text_serializer.h"
#include "tests/testing/child_process.h"
#include "tests/testing/event_fakes.h"

namespace loophost::host {
namespace {

using ::loophost::testing::FakeRolePlugins;
using ::loophost::testing::FakeServer;
using ::loophost::testing::FakeTransport;
using ::loophost::testing::IsOk;
using ::loophost::testing::TempDir;
using ::loophost::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(10);
constexpr char kResource[] = "/cluster/node/n1/sync/ptp-status/lock-state";

TEST(DeliveryBackoffTest, DoublesUpToTheMaximumWithJitter) {
  const absl::Duration initial = absl::Milliseconds(100);
  const absl::Duration max = absl::Seconds(10);
  EXPECT_EQ(DeliveryBackoff(0, initial, max, 0.5), initial);
  EXPECT_EQ(DeliveryBackoff(1, initial, max, 0.5), absl::Milliseconds(200));
  EXPECT_EQ(DeliveryBackoff(3, initial, max, 0.5), absl::Milliseconds(800));
  EXPECT_EQ(DeliveryBackoff(60, initial, max, 0.5), max);
  EXPECT_EQ(DeliveryBackoff(0, initial, max, 0.0), absl::Milliseconds(80));
  EXPECT_EQ(DeliveryBackoff(0, initial, max, 1.0), absl::Milliseconds(120));
}

class DeliveryDispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("lh-dispatch-");
    ASSERT_THAT(dir, IsOk());
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    auto store = EventStore::Open(dir_->Join("events.db"));
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
    metrics_ = std::make_unique<EventMetrics>(registry_);
    transport_ = std::make_unique<FakeTransport>();
    server_ = std::make_unique<FakeServer>(transport_.get());
    plugins_.Set("http", {kTransportKind}, server_->channel());
    options_.poll_interval = absl::Milliseconds(20);
    options_.housekeeping_interval = absl::Milliseconds(50);
    options_.backoff_initial = absl::Milliseconds(50);
    options_.backoff_max = absl::Milliseconds(200);
    options_.drain_timeout = absl::Milliseconds(200);
  }
  void TearDown() override {
    dispatcher_.reset();
    server_.reset();
  }

  void Start() {
    dispatcher_ = std::make_unique<DeliveryDispatcher>(options_, *store_,
                                                       plugins_, *metrics_);
    dispatcher_->Start();
  }

  SubscriptionRecord Subscribe(const std::string& endpoint) {
    SubscriptionRecord s;
    s.api_version = 2;
    s.resource_address = kResource;
    s.endpoint = endpoint;
    auto added = store_->AddSubscription(s);
    EXPECT_THAT(added, IsOk());
    return added.ok() ? *added : s;
  }

  // Events 1..n for each subscription, bodies "<endpoint>#<i>".
  void Enqueue(const std::vector<SubscriptionRecord>& subs, int n) {
    for (int i = 1; i <= n; ++i) {
      std::vector<EventStore::Delivery> deliveries;
      for (const SubscriptionRecord& s : subs) {
        deliveries.push_back({s.id, s.endpoint + "#" + std::to_string(i)});
      }
      ASSERT_THAT(store_->EnqueueEvent("ptp", ++sequence_,
                                       "e" + std::to_string(i), deliveries),
                  IsOk());
    }
    if (dispatcher_) {
      std::vector<std::string> ids;
      for (const SubscriptionRecord& s : subs) ids.push_back(s.id);
      dispatcher_->Notify(ids);
    }
  }

  // Bodies the transport received for `endpoint`, in arrival order.
  std::vector<std::string> BodiesFor(const std::string& endpoint) {
    std::vector<std::string> out;
    for (const auto& r : transport_->received()) {
      if (r.delivery.endpoint() == endpoint) out.push_back(r.delivery.body());
    }
    return out;
  }

  // One row in flight per subscription, and delivered rows recorded only with
  // a failure or at Stop: no batch fills, no delay ends, no housekeeping
  // after the first.
  void RecordOutcomesOnlyAtFailuresAndStop() {
    options_.subscription_window = 1;
    options_.outcome_batch_rows = 1000;
    options_.outcome_batch_delay = absl::Hours(1);
    options_.housekeeping_interval = absl::Hours(1);
  }

  std::string Metrics() {
    return prometheus::TextSerializer().Serialize(registry_.Collect());
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<EventStore> store_;
  prometheus::Registry registry_;
  std::unique_ptr<EventMetrics> metrics_;
  FakeRolePlugins plugins_;
  std::unique_ptr<FakeTransport> transport_;
  std::unique_ptr<FakeServer> server_;
  DeliveryDispatcherOptions options_;
  std::unique_ptr<DeliveryDispatcher> dispatcher_;
  uint64_t sequence_ = 0;
};

std::vector<std::string> Expected(const std::string& endpoint, int n) {
  std::vector<std::string> out;
  for (int i = 1; i <= n; ++i)
    out.push_back(endpoint + "#" + std::to_string(i));
  return out;
}

TEST_F(DeliveryDispatcherTest, DeliversEverythingInOrderAndEmptiesTheOutbox) {
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  SubscriptionRecord b = Subscribe("http://127.0.0.1:1/b");
  Start();
  Enqueue({a, b}, 50);
  ASSERT_TRUE(WaitFor([&] { return store_->OutboxDepth() == 0; }, kWait,
                      "outbox empty"));
  EXPECT_THAT(BodiesFor(a.endpoint),
              ElementsAreArray(Expected(a.endpoint, 50)));
  EXPECT_THAT(BodiesFor(b.endpoint),
              ElementsAreArray(Expected(b.endpoint, 50)));
  for (const auto& r : transport_->received()) {
    EXPECT_EQ(r.delivery.content_type(), "application/json");
    EXPECT_NE(r.delivery.delivery_id(), 0u);
  }
  EXPECT_THAT(Metrics(),
              HasSubstr("loophost_deliveries_total{result=\"delivered\"} 100"));
}

TEST_F(DeliveryDispatcherTest,
       OnePostedAtATimePerSubscriberAndASlowOneDelaysNoOther) {
  SubscriptionRecord slow = Subscribe("http://127.0.0.1:1/slow");
  SubscriptionRecord fast = Subscribe("http://127.0.0.1:1/fast");
  transport_->Hold(slow.endpoint);
  Start();
  Enqueue({slow, fast}, 10);
  ASSERT_TRUE(WaitFor([&] { return BodiesFor(fast.endpoint).size() == 10; },
                      kWait, "the fast subscriber has all 10"));
  // The slow one has exactly its first, unanswered; the window's worth of
  // the rest (8 in all) waits at the transport behind it.
  EXPECT_THAT(BodiesFor(slow.endpoint), ElementsAre(slow.endpoint + "#1"));
  EXPECT_EQ(transport_->held(), 1u);
  ASSERT_TRUE(WaitFor([&] { return transport_->waiting() == 7; }, kWait,
                      "7 waiting behind the first"));
  transport_->Release(slow.endpoint);
  ASSERT_TRUE(WaitFor([&] { return store_->OutboxDepth() == 0; }, kWait,
                      "outbox empty"));
  EXPECT_THAT(BodiesFor(slow.endpoint),
              ElementsAreArray(Expected(slow.endpoint, 10)));
}

TEST_F(DeliveryDispatcherTest, ABoundBelowTheWindowsStillDeliversAllInOrder) {
  // 5 subscriptions with a window of 8 each, and room for 3 in flight in
  // all: each pass asks the store for no more rows than that room, and the
  // lanes it leaves out come first in the next.
  options_.max_in_flight = 3;
  std::vector<SubscriptionRecord> subs;
  for (const char* name : {"a", "b", "c", "d", "e"}) {
    subs.push_back(Subscribe(std::string("http://127.0.0.1:1/") + name));
    transport_->Hold(subs.back().endpoint);
  }
  Start();
  Enqueue(subs, 20);
  ASSERT_TRUE(
      WaitFor([&] { return transport_->held() == 3; }, kWait, "three held"));
  EXPECT_EQ(transport_->received().size(), 3u);
  for (const SubscriptionRecord& s : subs) transport_->Release(s.endpoint);
  ASSERT_TRUE(WaitFor([&] { return store_->OutboxDepth() == 0; }, kWait,
                      "outbox empty"));
  for (const SubscriptionRecord& s : subs) {
    EXPECT_THAT(BodiesFor(s.endpoint),
                ElementsAreArray(Expected(s.endpoint, 20)));
  }
}

TEST_F(DeliveryDispatcherTest, AWindowOfOneSendsTheNextOnlyAfterTheResult) {
  options_.subscription_window = 1;
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  transport_->Hold(a.endpoint);
  Start();
  Enqueue({a}, 3);
  ASSERT_TRUE(WaitFor([&] { return transport_->held() == 1; }, kWait,
                      "the first held"));
  EXPECT_EQ(transport_->waiting(), 0u);
  transport_->Release(a.endpoint);
  ASSERT_TRUE(WaitFor([&] { return store_->OutboxDepth() == 0; }, kWait,
                      "outbox empty"));
  EXPECT_THAT(BodiesFor(a.endpoint), ElementsAreArray(Expected(a.endpoint, 3)));
  for (const auto& r : transport_->received()) {
    EXPECT_FALSE(r.delivery.after_previous());
  }
}

TEST_F(DeliveryDispatcherTest, NewRowsJoinASubscriptionsLaneWhileItIsBusy) {
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  transport_->Hold(a.endpoint);
  Start();
  Enqueue({a}, 1);
  ASSERT_TRUE(WaitFor([&] { return transport_->held() == 1; }, kWait,
                      "the first held"));
  // The notification of two more rows sends them behind the first at once,
  // without waiting for its result. (Enqueue numbers its bodies from 1.)
  Enqueue({a}, 2);
  ASSERT_TRUE(WaitFor([&] { return transport_->waiting() == 2; }, kWait,
                      "two more behind the first"));
  transport_->Release(a.endpoint);
  ASSERT_TRUE(WaitFor([&] { return store_->OutboxDepth() == 0; }, kWait,
                      "outbox empty"));
  EXPECT_THAT(
      BodiesFor(a.endpoint),
      ElementsAre(a.endpoint + "#1", a.endpoint + "#1", a.endpoint + "#2"));
}

TEST_F(DeliveryDispatcherTest, DeliveredRowsNotYetRecordedAreNeverSentAgain) {
  RecordOutcomesOnlyAtFailuresAndStop();
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  Start();
  Enqueue({a}, 5);
  ASSERT_TRUE(WaitFor([&] { return BodiesFor(a.endpoint).size() >= 5; }, kWait,
                      "five deliveries"));
  // All five are still in the outbox: the subscription went on after its
  // last row sent instead of taking its oldest row again.
  EXPECT_EQ(store_->OutboxDepth(), 5u);
  dispatcher_->Stop();
  EXPECT_EQ(store_->OutboxDepth(), 0u);
  EXPECT_THAT(BodiesFor(a.endpoint), ElementsAreArray(Expected(a.endpoint, 5)));
}

TEST_F(DeliveryDispatcherTest, AFailureRecordsTheDeliveriesBeforeItAtOnce) {
  RecordOutcomesOnlyAtFailuresAndStop();
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  transport_->Script(a.endpoint, {{}, {}, {false, 500, "boom"}});
  Start();
  Enqueue({a}, 5);
  ASSERT_TRUE(WaitFor([&] { return BodiesFor(a.endpoint).size() >= 6; }, kWait,
                      "five deliveries and a retry"));
  EXPECT_THAT(
      BodiesFor(a.endpoint),
      ElementsAre(a.endpoint + "#1", a.endpoint + "#2", a.endpoint + "#3",
                  a.endpoint + "#3", a.endpoint + "#4", a.endpoint + "#5"));
  // #1 and #2 left the outbox with #3's failure; #3 to #5 wait for Stop.
  EXPECT_EQ(store_->OutboxDepth(), 3u);
  dispatcher_->Stop();
  EXPECT_EQ(store_->OutboxDepth(), 0u);
}

TEST_F(DeliveryDispatcherTest, RetriesWithBackoffAndKeepsTheOrder) {
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  transport_->Script(a.endpoint, {{false, 503, "unavailable"},
                                  {false, 0, "connection refused"},
                                  {false, 500, "boom"}});
  Start();
  Enqueue({a}, 3);
  ASSERT_TRUE(WaitFor([&] { return store_->OutboxDepth() == 0; }, kWait,
                      "outbox empty"));
  std::vector<FakeTransport::Received> received = transport_->received();
  ASSERT_EQ(received.size(), 6u);
  // Event 1 four times (three failures), then 2 and 3: nothing overtook it.
  // 2 and 3 went along with the first attempt only (and were skipped); the
  // retries of a failing subscriber carry its head alone.
  std::vector<std::string> bodies;
  for (const auto& r : received) bodies.push_back(r.delivery.body());
  const std::string e1 = a.endpoint + "#1";
  EXPECT_THAT(bodies, ElementsAre(e1, e1, e1, e1, a.endpoint + "#2",
                                  a.endpoint + "#3"));
  // The waits grow: >= 0.8 * 50, 100, 200 ms.
  EXPECT_GE(received[1].at - received[0].at, absl::Milliseconds(40));
  EXPECT_GE(received[2].at - received[1].at, absl::Milliseconds(80));
  EXPECT_GE(received[3].at - received[2].at, absl::Milliseconds(160));
  EXPECT_EQ(transport_->skipped(), 2u);
  EXPECT_THAT(Metrics(),
              HasSubstr("loophost_deliveries_total{result=\"failed\"} 3"));
  // Delivered: the connection-failure count went back to 0.
  EXPECT_EQ(store_->FindSubscription(a.id)->consecutive_failures, 0);
}

TEST_F(DeliveryDispatcherTest, ATransportRestartLosesNothing) {
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  transport_->Hold(a.endpoint);
  Start();
  Enqueue({a}, 5);
  ASSERT_TRUE(transport_->WaitReceived(1, kWait));

  // The transport loop is killed with the delivery unanswered; a new
  // generation comes up.
  auto next = std::make_unique<FakeTransport>();
  auto next_server = std::make_unique<FakeServer>(next.get());
  server_->Shutdown();
  plugins_.Set("http", {kTransportKind}, next_server->channel());
  ASSERT_TRUE(WaitFor([&] { return store_->OutboxDepth() == 0; }, kWait,
                      "outbox empty through the new transport"));
  std::vector<std::string> bodies;
  for (const auto& r : next->received()) bodies.push_back(r.delivery.body());
  // Everything, in order; the one in flight sent again.
  EXPECT_THAT(bodies, ElementsAreArray(Expected(a.endpoint, 5)));
  dispatcher_.reset();
  next_server.reset();
}

TEST_F(DeliveryDispatcherTest, RetentionDropsTheOldestAndCountsThem) {
  options_.retention_rows = 3;
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  transport_->Hold(a.endpoint);
  Enqueue({a}, 5);
  Start();
  ASSERT_TRUE(WaitFor(
      [&] {
        return Metrics().find("loophost_outbox_dropped_total{subscription=\"" +
                              a.id + "\"} 2") != std::string::npos;
      },
      kWait, "2 rows dropped and counted"));
  EXPECT_EQ(store_->OutboxDepth(), 3u);
  transport_->Release(a.endpoint);
  ASSERT_TRUE(WaitFor([&] { return store_->OutboxDepth() == 0; }, kWait,
                      "outbox empty"));
  // The one in flight when retention ran may have been dropped too: its result
  // finds no row. Whatever was kept arrived, in order, 3..5 last.
  std::vector<std::string> bodies = BodiesFor(a.endpoint);
  ASSERT_GE(bodies.size(), 3u);
  EXPECT_THAT(
      std::vector<std::string>(bodies.end() - 3, bodies.end()),
      ElementsAre(a.endpoint + "#3", a.endpoint + "#4", a.endpoint + "#5"));
}

TEST_F(DeliveryDispatcherTest, OutboxGaugesFollowTheDepth) {
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  transport_->Hold(a.endpoint);
  Enqueue({a}, 4);
  Start();
  ASSERT_TRUE(WaitFor(
      [&] {
        return Metrics().find("loophost_outbox_depth{endpoint=\"" + a.endpoint +
                              "\",subscription=\"" + a.id + "\"} 4") !=
               std::string::npos;
      },
      kWait, "depth 4"));
  EXPECT_THAT(Metrics(), HasSubstr("loophost_outbox_oldest_age_seconds{"));
  EXPECT_THAT(Metrics(),
              HasSubstr("cne_api_subscriptions{status=\"active\"} 1"));
}

TEST_F(DeliveryDispatcherTest, RemovesASubscriptionAfterConnectionFailures) {
  options_.remove_after_failures = 3;
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  SubscriptionRecord b = Subscribe("http://127.0.0.1:1/b");
  transport_->Script(a.endpoint, std::vector<FakeTransport::Outcome>(
                                     10, {false, 0, "connection refused"}));
  // An answer that is not 2xx is not a connection failure.
  transport_->Script(
      b.endpoint, std::vector<FakeTransport::Outcome>(4, {false, 500, "boom"}));
  Start();
  Enqueue({a, b}, 2);
  ASSERT_TRUE(WaitFor([&] { return !store_->FindSubscription(a.id); }, kWait,
                      "subscription a removed"));
  EXPECT_EQ(BodiesFor(a.endpoint).size(), 3u);
  ASSERT_TRUE(WaitFor([&] { return store_->OutboxDepth() == 0; }, kWait,
                      "b delivered, a's rows gone with it"));
  EXPECT_TRUE(store_->FindSubscription(b.id).has_value());
  EXPECT_THAT(Metrics(), HasSubstr("loophost_subscriptions_removed_total{"
                                   "reason=\"connection_failures\"} 1"));
}

TEST_F(DeliveryDispatcherTest, OffByDefaultNothingIsRemoved) {
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  transport_->Script(a.endpoint, std::vector<FakeTransport::Outcome>(
                                     6, {false, 0, "connection refused"}));
  Start();
  Enqueue({a}, 1);
  ASSERT_TRUE(WaitFor([&] { return store_->OutboxDepth() == 0; }, kWait,
                      "delivered after 6 failures"));
  EXPECT_TRUE(store_->FindSubscription(a.id).has_value());
}

TEST_F(DeliveryDispatcherTest, StopKeepsWhatWasNotDelivered) {
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  transport_->Hold(a.endpoint);
  Start();
  Enqueue({a}, 3);
  ASSERT_TRUE(transport_->WaitReceived(1, kWait));
  dispatcher_->Stop();
  EXPECT_EQ(store_->OutboxDepth(), 3u);
  // A new dispatcher (the host restarted) delivers all of it.
  dispatcher_.reset();
  transport_->Release(a.endpoint);
  Start();
  ASSERT_TRUE(WaitFor([&] { return store_->OutboxDepth() == 0; }, kWait,
                      "outbox empty"));
  std::vector<std::string> bodies = BodiesFor(a.endpoint);
  EXPECT_THAT(std::vector<std::string>(bodies.end() - 3, bodies.end()),
              ElementsAreArray(Expected(a.endpoint, 3)));
}

TEST_F(DeliveryDispatcherTest, WaitsForATransportThatIsNotServingYet) {
  plugins_.Remove("http");
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  Start();
  Enqueue({a}, 2);
  EXPECT_EQ(store_->OutboxDepth(), 2u);
  plugins_.Set("http", {kTransportKind}, server_->channel());
  ASSERT_TRUE(WaitFor([&] { return store_->OutboxDepth() == 0; }, kWait,
                      "delivered once the transport serves"));
}

TEST_F(DeliveryDispatcherTest, AStalledDeliveryReopensTheStreamAndIsSentAgain) {
  // The dispatcher has no polling timer: only the stall limit of the delivery
  // in flight can wake it here.
  options_.stall_timeout = absl::Milliseconds(300);
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  transport_->Hold(a.endpoint);  // received, never answered
  Start();
  Enqueue({a}, 1);
  ASSERT_TRUE(transport_->WaitReceived(1, kWait));
  ASSERT_TRUE(WaitFor([&] { return transport_->received().size() >= 2; }, kWait,
                      "the stalled delivery sent again"));
  EXPECT_GE(transport_->streams(), 2u);
  const auto received = transport_->received();
  EXPECT_EQ(received[1].delivery.delivery_id(),
            received[0].delivery.delivery_id());
  EXPECT_GE(received[1].at - received[0].at, options_.stall_timeout);
  transport_->Release(a.endpoint);
  ASSERT_TRUE(WaitFor([&] { return store_->OutboxDepth() == 0; }, kWait,
                      "delivered once answered"));
}

}  // namespace
}  // namespace loophost::host
