// EventStore against a real SQLite file in a temp dir: migrations from an
// empty database, constraints, atomic transactions, the outbox's per-subscriber
// order, backoff and retention.
#include "host/event_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "tests/testing/child_process.h"

namespace loophost::host {
namespace {

using ::loophost::testing::IsOk;
using ::loophost::testing::StatusIs;
using ::loophost::testing::TempDir;
using ::loophost::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

MATCHER_P(IsOkAndHolds, value,
          "is OK and holds " + ::testing::PrintToString(value)) {
  if (!arg.ok()) {
    *result_listener << "status is " << arg.status();
    return false;
  }
  *result_listener << "holds " << *arg;
  return *arg == value;
}

// Runs SQL on a second connection to the same file (what the store cannot be
// made to do through its API: read the schema, plant a failing trigger).
std::vector<std::string> RawQuery(const std::string& path,
                                  const std::string& sql) {
  sqlite3* db = nullptr;
  std::vector<std::string> rows;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) return {"open failed"};
  sqlite3_busy_timeout(db, 5000);
  sqlite3_exec(
      db, sql.c_str(),
      [](void* out, int n, char** values, char**) {
        std::string row;
        for (int i = 0; i < n; ++i) {
          if (i > 0) row += "|";
          row += values[i] != nullptr ? values[i] : "NULL";
        }
        static_cast<std::vector<std::string>*>(out)->push_back(row);
        return 0;
      },
      &rows, nullptr);
  sqlite3_close(db);
  return rows;
}

class EventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("lh-store-");
    ASSERT_THAT(dir, IsOk());
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    path_ = dir_->Join("events.db");
    auto store = EventStore::Open(path_);
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
  }

  SubscriptionRecord Subscribe(const std::string& endpoint,
                               const std::string& resource = "/r/a",
                               int version = 2) {
    SubscriptionRecord s;
    s.api_version = version;
    s.resource_address = resource;
    s.endpoint = endpoint;
    auto added = store_->AddSubscription(s);
    EXPECT_THAT(added, IsOk());
    return added.ok() ? *added : s;
  }

  std::unique_ptr<TempDir> dir_;
  std::string path_;
  std::unique_ptr<EventStore> store_;
};

TEST_F(EventStoreTest, MigratesAnEmptyDatabaseToTheCurrentSchema) {
  EXPECT_THAT(RawQuery(path_, "SELECT version FROM schema_version"),
              ElementsAre("5"));
  EXPECT_THAT(RawQuery(path_,
                       "SELECT name FROM sqlite_master WHERE type='index' AND "
                       "tbl_name='outbox' AND sql IS NOT NULL ORDER BY name"),
              ElementsAre("outbox_by_subscription"));
  EXPECT_THAT(
      RawQuery(path_, "SELECT name FROM sqlite_master WHERE type='trigger'"),
      IsEmpty());
  EXPECT_THAT(RawQuery(path_,
                       "SELECT name FROM sqlite_master WHERE type='table' AND "
                       "name NOT LIKE 'sqlite_%' ORDER BY name"),
              ElementsAre("bodies", "outbox", "publishers", "schema_version",
                          "source_cursors", "subscriptions"));
  EXPECT_THAT(RawQuery(path_, "PRAGMA journal_mode"), ElementsAre("wal"));
}

// The tables that schemas 1 to 4 had alike, as loophost wrote them.
constexpr char kSchema1To4Tables[] = R"sql(
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE publishers (id TEXT PRIMARY KEY, resource_address TEXT NOT NULL
  UNIQUE, event_type TEXT NOT NULL, source_plugin TEXT NOT NULL,
  endpoint_uri TEXT NOT NULL DEFAULT '');
CREATE TABLE subscriptions (id TEXT PRIMARY KEY, api_version INTEGER NOT NULL
  CHECK (api_version IN (1, 2)), resource_address TEXT NOT NULL CHECK
  (resource_address <> ''), endpoint TEXT NOT NULL CHECK (endpoint <> ''),
  created_us INTEGER NOT NULL, consecutive_failures INTEGER NOT NULL DEFAULT 0,
  UNIQUE (endpoint, resource_address));
CREATE TABLE source_cursors (source_plugin TEXT PRIMARY KEY,
  sequence INTEGER NOT NULL);
)sql";

TEST_F(EventStoreTest, MigratesAVersion1DatabaseWithItsUndeliveredRows) {
  // A database as loophost wrote it with schema 1: bodies in the outbox rows.
  const std::string old_path = dir_->Join("v1.db");
  RawQuery(old_path, std::string(kSchema1To4Tables) + R"sql(
INSERT INTO schema_version VALUES (1);
CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,
  subscription_id TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
  endpoint TEXT NOT NULL, event_id TEXT NOT NULL, body BLOB NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, enqueued_us INTEGER NOT NULL,
  next_attempt_us INTEGER NOT NULL);
CREATE INDEX outbox_by_subscription ON outbox (subscription_id, id);
CREATE INDEX outbox_by_age ON outbox (enqueued_us);
INSERT INTO subscriptions VALUES ('s1', 2, '/r/a', 'http://127.0.0.1:1/a', 1, 0);
INSERT INTO outbox VALUES (41, 's1', 'http://127.0.0.1:1/a', 'e1', 'first', 2, 1, 1);
INSERT INTO outbox VALUES (42, 's1', 'http://127.0.0.1:1/a', 'e2', 'second', 0, 2, 2);
)sql");
  auto store = EventStore::Open(old_path);
  ASSERT_THAT(store, IsOk());
  EXPECT_THAT(RawQuery(old_path, "SELECT version FROM schema_version"),
              ElementsAre("5"));
  std::vector<OutboxRow> due = (*store)->DueDeliveries(absl::Now(), {}, 10);
  ASSERT_THAT(due, SizeIs(1));
  EXPECT_EQ(due[0].id, 41u);
  EXPECT_EQ(due[0].subscription_id, "s1");
  EXPECT_EQ(due[0].endpoint, "http://127.0.0.1:1/a");
  EXPECT_EQ(due[0].event_id, "e1");
  EXPECT_EQ(due[0].body, "first");
  EXPECT_EQ(due[0].attempts, 2);
  ASSERT_THAT((*store)->MarkDelivered(41), IsOk());
  due = (*store)->DueDeliveries(absl::Now(), {}, 10);
  ASSERT_THAT(due, SizeIs(1));
  EXPECT_EQ(due[0].body, "second");
  EXPECT_THAT(RawQuery(old_path, "SELECT body FROM bodies"),
              ElementsAre("second"));
  // New rows number on after the migrated ones.
  ASSERT_THAT((*store)->EnqueueEvent("ptp", 1, "e3", {{"s1", "third"}}),
              IsOk());
  EXPECT_THAT(RawQuery(old_path, "SELECT id FROM outbox ORDER BY id"),
              ElementsAre("42", "43"));
}

TEST_F(EventStoreTest, AnEventsBodyIsStoredOncePerShapeAndGoesWithItsLastRow) {
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  SubscriptionRecord b = Subscribe("http://127.0.0.1:1/b");
  SubscriptionRecord c = Subscribe("http://127.0.0.1:1/c", "/r/a", 1);
  ASSERT_THAT(store_->EnqueueEvent(
                  "ptp", 1, "e1",
                  {{a.id, "v2 body"}, {b.id, "v2 body"}, {c.id, "v1 body"}}),
              IsOkAndHolds(3));
  EXPECT_THAT(RawQuery(path_, "SELECT body FROM bodies ORDER BY body"),
              ElementsAre("v1 body", "v2 body"));
  std::vector<OutboxRow> due = store_->DueDeliveries(absl::Now(), {}, 10);
  ASSERT_THAT(due, SizeIs(3));
  EXPECT_EQ(due[1].body, "v2 body");
  EXPECT_EQ(due[2].body, "v1 body");
  ASSERT_THAT(store_->MarkDelivered(due[0].id), IsOk());
  EXPECT_THAT(RawQuery(path_, "SELECT COUNT(*) FROM bodies"),
              ElementsAre("2"));  // b still needs the v2 body
  ASSERT_THAT(store_->DeleteSubscription(b.id), IsOk());  // cascades
  ASSERT_THAT(store_->MarkDelivered(due[2].id), IsOk());
  EXPECT_THAT(RawQuery(path_, "SELECT COUNT(*) FROM bodies"), ElementsAre("0"));
  // No subscription left to take a row: the body is not kept either.
  ASSERT_THAT(store_->DeleteSubscription(a.id), IsOk());
  ASSERT_THAT(store_->DeleteSubscription(c.id), IsOk());
  ASSERT_THAT(store_->EnqueueEvent("ptp", 2, "e2", {{a.id, "x"}}),
              IsOkAndHolds(0));
  EXPECT_THAT(RawQuery(path_, "SELECT COUNT(*) FROM bodies"), ElementsAre("0"));
}

TEST_F(EventStoreTest, ABodyStaysWhileAnOlderRowWaitsAndGoesAfterIt) {
  SubscriptionRecord a = Subscribe("http://127.0.0.1:1/a");
  SubscriptionRecord b = Subscribe("http://127.0.0.1:1/b", "/r/b");
  ASSERT_THAT(store_->EnqueueEvent("ptp", 1, "e1", {{a.id, "one"}}),
              IsOkAndHolds(1));
  ASSERT_THAT(store_->EnqueueEvent("ptp", 2, "e2", {{b.id, "two"}}),
              IsOkAndHolds(1));
  std::vector<OutboxRow> due = store_->DueDeliveries(absl::Now(), {}, 10);
  ASSERT_THAT(due, SizeIs(2));
  // b's row goes first; its body waits for a's older row to go.
  ASSERT_THAT(store_->RecordOutcomes({{due[1].id, true, absl::Now()}}), IsOk());
  EXPECT_THAT(RawQuery(path_, "SELECT body FROM bodies ORDER BY id"),
              ElementsAre("one", "two"));
  ASSERT_THAT(store_->RecordOutcomes({{due[0].id, true, absl::Now()}}), IsOk());
  EXPECT_THAT(RawQuery(path_, "SELECT COUNT(*) FROM bodies"), ElementsAre("0"));
  // Retention and deleting every subscription collect bodies too.
  ASSERT_THAT(store_->EnqueueEvent("ptp", 3, "e3", {{a.id, "3"}}),
              IsOkAndHolds(1));
  ASSERT_THAT(store_->EnqueueEvent("ptp", 4, "e4", {{b.id, "4"}}),
              IsOkAndHolds(1));
  ASSERT_THAT(
      store_->ApplyRetention(absl::Now() + absl::Hours(2), absl::Hours(1), 0),
      IsOk());
  EXPECT_THAT(RawQuery(path_, "SELECT COUNT(*) FROM bodies"), ElementsAre("0"));
  ASSERT_THAT(store_->EnqueueEvent("ptp", 5, "e5", {{a.id, "5"}}),
              IsOkAndHolds(1));
  ASSERT_THAT(store_->DeleteAllSubscriptions(), IsOkAndHolds(2));
  EXPECT_THAT(RawQuery(path_, "SELECT COUNT(*) FROM bodies"), ElementsAre("0"));
}

TEST_F(EventStoreTest, MigratesAVersion3DatabaseAndNumbersOnFromItsSequence) {
  // A database as loophost wrote it with schema 3: rows up to 500 were
  // written, all but row 41 delivered.
  const std::string old_path = dir_->Join("v3.db");
  RawQuery(old_path, std::string(kSchema1To4Tables) + R"sql(
INSERT INTO schema_version VALUES (3);
CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,
  subscription_id TEXT NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
  endpoint TEXT NOT NULL, event_id TEXT NOT NULL,
  body_id INTEGER NOT NULL REFERENCES bodies(id),
  attempts INTEGER NOT NULL DEFAULT 0, enqueued_us INTEGER NOT NULL,
  next_attempt_us INTEGER NOT NULL);
CREATE INDEX outbox_by_subscription ON outbox (subscription_id, id);
CREATE INDEX outbox_by_body ON outbox (body_id);
CREATE TRIGGER outbox_body_gone AFTER DELETE ON outbox
  WHEN NOT EXISTS (SELECT 1 FROM outbox WHERE body_id = OLD.body_id)
  BEGIN DELETE FROM bodies WHERE id = OLD.body_id; END;
INSERT INTO subscriptions VALUES ('s1', 2, '/r/a', 'http://127.0.0.1:1/a', 1, 0);
INSERT INTO subscriptions VALUES ('s2', 2, '/r/a', 'http://127.0.0.1:2/b', 2, 0);
INSERT INTO bodies VALUES (7, 'waiting');
INSERT INTO outbox VALUES (41, 's1', 'http://127.0.0.1:1/a', 'e1', 7, 3, 1, 1);
INSERT INTO outbox VALUES (45, 's2', 'http://127.0.0.1:2/b', 'e1', 7, 0, 1, 1);
UPDATE sqlite_sequence SET seq = 500 WHERE name = 'outbox';
)sql");
  auto store = EventStore::Open(old_path);
  ASSERT_THAT(store, IsOk());
  EXPECT_THAT(RawQuery(old_path, "SELECT version FROM schema_version"),
              ElementsAre("5"));
  EXPECT_THAT(RawQuery(old_path,
                       "SELECT name FROM sqlite_master WHERE type IN "
                       "('index', 'trigger') AND sql IS NOT NULL"),
              ElementsAre("outbox_by_subscription"));
  std::vector<OutboxRow> due = (*store)->DueDeliveries(absl::Now(), {}, 10);
  ASSERT_THAT(due, SizeIs(2));
  EXPECT_EQ(due[0].id, 41u);
  EXPECT_EQ(due[0].subscription_id, "s1");
  EXPECT_EQ(due[0].endpoint, "http://127.0.0.1:1/a");
  EXPECT_EQ(due[0].event_id, "e1");
  EXPECT_EQ(due[0].body, "waiting");
  EXPECT_EQ(due[0].attempts, 3);
  EXPECT_EQ(due[1].id, 45u);
  EXPECT_EQ(due[1].subscription_id, "s2");
  EXPECT_EQ(due[1].endpoint, "http://127.0.0.1:2/b");
  EXPECT_EQ(due[1].event_id, "e1");
  EXPECT_EQ(due[1].body, "waiting");
  ASSERT_THAT((*store)->MarkDelivered(45), IsOk());
  ASSERT_THAT((*store)->EnqueueEvent("ptp", 1, "e2", {{"s1", "new"}}),
              IsOkAndHolds(1));
  EXPECT_THAT(RawQuery(old_path, "SELECT id FROM outbox ORDER BY id"),
              ElementsAre("41", "501"));
  ASSERT_THAT((*store)->MarkDelivered(41), IsOk());
  EXPECT_THAT(RawQuery(old_path, "SELECT body FROM bodies"),
              ElementsAre("new"));
  // Deleting the subscription takes its rows, and their bodies, with it.
  ASSERT_THAT((*store)->DeleteSubscription("s1"), IsOk());
  EXPECT_THAT(RawQuery(old_path, "SELECT COUNT(*) FROM outbox"),
              ElementsAre("0"));
  EXPECT_THAT(RawQuery(old_path, "SELECT COUNT(*) FROM bodies"),
              ElementsAre("0"));
}

TEST_F(EventStoreTest, ReopeningKeepsEverythingAndDoesNotMigrateAgain) {
  SubscriptionRecord sub = Subscribe("http://127.0.0.1:1/a");
  auto publisher = store_->UpsertPublisher({"", "/r/a", "t.a", "ptp", "u"});
  ASSERT_THAT(publisher, IsOk());
  ASSERT_THAT(store_->EnqueueEvent("ptp", 7, "e1", {{sub.id, "b"}}), IsOk());
  store_.reset();

  auto reopened = EventStore::Open(path_);
  ASSERT_THAT(reopened, IsOk());
  EXPECT_THAT((*reopened)->ListSubscriptions(), SizeIs(1));
  EXPECT_EQ((*reopened)->FindPublisher(publisher->id)->resource_address,
            "/r/a");
  EXPECT_EQ((*reopened)->SourceCursor("ptp"), 7u);
  EXPECT_EQ((*reopened)->OutboxDepth(), 1u);
  EXPECT_THAT(RawQuery(path_, "SELECT COUNT(*) FROM schema_version"),
              ElementsAre("1"));  // one row, not one per open
}

TEST_F(EventStoreTest, RefusesADatabaseFromANewerLoophost) {
  store_.reset();
  RawQuery(path_, "UPDATE schema_version SET version = 99");
  EXPECT_THAT(EventStore::Open(path_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("schema version 99 is newer")));
}

TEST_F(EventStoreTest, OpenNamesAPathItCannotUse) {
  EXPECT_THAT(EventStore::Open(dir_->Join("missing/dir/events.db")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("missing/dir/events.db")));
}

TEST_F(EventStoreTest, UpsertPublisherKeepsTheIdOfAResource) {
  auto first = store_->UpsertPublisher({"", "/r/a", "t.a", "ptp", "u1"});
  ASSERT_THAT(first, IsOk());
  EXPECT_THAT(first->id, SizeIs(36));
  auto second = store_->UpsertPublisher({"", "/r/a", "t.b", "ptp2", "u2"});
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(second->id, first->id);
  ASSERT_THAT(store_->ListPublishers(), SizeIs(1));
  EXPECT_EQ(store_->ListPublishers()[0].event_type, "t.b");
  EXPECT_EQ(store_->FindPublisherByResource("/r/a")->source_plugin, "ptp2");
  EXPECT_FALSE(store_->FindPublisher("nope").has_value());
  EXPECT_THAT(store_->UpsertPublisher({"", "", "t", "p", ""}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(EventStoreTest,
       SameEndpointAndResourceIsAlreadyExistsWhateverTheVersion) {
  Subscribe("http://127.0.0.1:1/a", "/r/a", 2);
  SubscriptionRecord dup;
  dup.api_version = 1;
  dup.resource_address = "/r/a";
  dup.endpoint = "http://127.0.0.1:1/a";
  EXPECT_THAT(store_->AddSubscription(dup),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("already subscribed")));
  // Another resource or another endpoint is fine.
  Subscribe("http://127.0.0.1:1/a", "/r/b");
  Subscribe("http://127.0.0.1:1/b", "/r/a");
  EXPECT_THAT(store_->ListSubscriptions(), SizeIs(3));
}

TEST_F(EventStoreTest, ConstraintsRejectBadRecords) {
  SubscriptionRecord bad;
  bad.api_version = 3;
  bad.resource_address = "/r/a";
  bad.endpoint = "http://x/";
  EXPECT_THAT(store_->AddSubscription(bad),
              StatusIs(absl::StatusCode::kInvalidArgument));
  bad.api_version = 2;
  bad.endpoint = "";
  EXPECT_THAT(store_->AddSubscription(bad),
              StatusIs(absl::StatusCode::kInvalidArgument));
  SubscriptionRecord first = Subscribe("http://x/1");
  SubscriptionRecord same_id;
  same_id.id = first.id;
  same_id.resource_address = "/r/z";
  same_id.endpoint = "http://x/2";
  EXPECT_THAT(store_->AddSubscription(same_id),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(store_->ListSubscriptions(), SizeIs(1));
}

TEST_F(EventStoreTest, DeletingASubscriptionDropsItsOutboxRows) {
  SubscriptionRecord a = Subscribe("http://x/a");
  SubscriptionRecord b = Subscribe("http://x/b");
  ASSERT_THAT(store_->EnqueueEvent("ptp", 1, "e1", {{a.id, "1"}, {b.id, "1"}}),
              IsOk());
  ASSERT_THAT(store_->DeleteSubscription(a.id), IsOk());
  EXPECT_EQ(store_->OutboxDepth(), 1u);
  EXPECT_THAT(store_->DeleteSubscription(a.id),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_FALSE(store_->FindSubscription(a.id).has_value());
  EXPECT_THAT(store_->DeleteAllSubscriptions(), IsOkAndHolds(1));
  EXPECT_EQ(store_->OutboxDepth(), 0u);
  EXPECT_THAT(store_->DeleteAllSubscriptions(), IsOkAndHolds(0));
}

TEST_F(EventStoreTest, EnqueueMovesTheCursorAndIgnoresReplays) {
  SubscriptionRecord a = Subscribe("http://x/a");
  EXPECT_EQ(store_->SourceCursor("ptp"), 0u);
  EXPECT_THAT(store_->EnqueueEvent("ptp", 5, "e5", {{a.id, "5"}}),
              IsOkAndHolds(1));
  EXPECT_EQ(store_->SourceCursor("ptp"), 5u);
  // A replay after a restart: nothing written.
  EXPECT_THAT(store_->EnqueueEvent("ptp", 5, "e5", {{a.id, "5"}}),
              IsOkAndHolds(0));
  EXPECT_THAT(store_->EnqueueEvent("ptp", 3, "e3", {{a.id, "3"}}),
              IsOkAndHolds(0));
  // No subscriber: only the cursor moves. Cursors are per source.
  EXPECT_THAT(store_->EnqueueEvent("ptp", 6, "e6", {}), IsOkAndHolds(0));
  EXPECT_EQ(store_->SourceCursor("ptp"), 6u);
  EXPECT_EQ(store_->SourceCursor("other"), 0u);
  // A subscription deleted meanwhile gets no row, the others do.
  EXPECT_THAT(
      store_->EnqueueEvent("ptp", 7, "e7", {{"gone", "7"}, {a.id, "7"}}),
      IsOkAndHolds(1));
  EXPECT_EQ(store_->OutboxDepth(), 2u);
  ASSERT_THAT(store_->SetSourceCursor("ptp", 2), IsOk());
  EXPECT_EQ(store_->SourceCursor("ptp"), 2u);
}

TEST_F(EventStoreTest, EnqueueIsAllOrNothing) {
  SubscriptionRecord a = Subscribe("http://x/a");
  SubscriptionRecord b = Subscribe("http://x/b");
  // The second row of the event fails: neither row nor the cursor may stay.
  RawQuery(path_,
           "CREATE TRIGGER fail_b BEFORE INSERT ON outbox WHEN "
           "NEW.subscription = (SELECT num FROM subscriptions WHERE endpoint = "
           "'http://x/b') BEGIN SELECT RAISE(ABORT, 'planted'); END");
  EXPECT_THAT(
      store_->EnqueueEvent("ptp", 1, "e1", {{a.id, "1"}, {b.id, "1"}}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("planted")));
  EXPECT_EQ(store_->OutboxDepth(), 0u);
  EXPECT_EQ(store_->SourceCursor("ptp"), 0u);
  RawQuery(path_, "DROP TRIGGER fail_b");
  EXPECT_THAT(store_->EnqueueEvent("ptp", 1, "e1", {{a.id, "1"}, {b.id, "1"}}),
              IsOkAndHolds(2));
}

TEST_F(EventStoreTest, DueDeliveriesGivesEachSubscriptionsOldestRow) {
  SubscriptionRecord a = Subscribe("http://x/a");
  SubscriptionRecord b = Subscribe("http://x/b");
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    const std::string body = std::to_string(seq);
    ASSERT_THAT(store_->EnqueueEvent("ptp", seq, "e" + body,
                                     {{a.id, "a" + body}, {b.id, "b" + body}}),
                IsOk());
  }
  const absl::Time now = absl::Now() + absl::Seconds(1);
  std::vector<OutboxRow> due = store_->DueDeliveries(now, {}, 10);
  ASSERT_THAT(due, SizeIs(2));
  EXPECT_EQ(due[0].body, "a1");
  EXPECT_EQ(due[0].event_id, "e1");
  EXPECT_EQ(due[0].endpoint, "http://x/a");
  EXPECT_EQ(due[1].body, "b1");
  EXPECT_LT(due[0].id, due[1].id);
  // Busy subscriptions are skipped, the limit holds.
  due = store_->DueDeliveries(now, {a.id}, 10);
  ASSERT_THAT(due, SizeIs(1));
  EXPECT_EQ(due[0].body, "b1");
  EXPECT_THAT(store_->DueDeliveries(now, {}, 1), SizeIs(1));
  EXPECT_THAT(store_->DueDeliveries(now, {}, 0), IsEmpty());

  // Delivered: the next row of that subscription comes up, in order.
  const uint64_t a1 = store_->DueDeliveries(now, {}, 10)[0].id;
  ASSERT_THAT(store_->MarkDelivered(a1), IsOk());
  EXPECT_THAT(store_->MarkDelivered(a1), StatusIs(absl::StatusCode::kNotFound));
  due = store_->DueDeliveries(now, {}, 10);
  ASSERT_THAT(due, SizeIs(2));
  EXPECT_EQ(due[0].body, "b1");
  EXPECT_EQ(due[1].body, "a2");

  // Failed: the head waits for its next attempt and holds back the rest.
  const uint64_t b1 = due[0].id;
  ASSERT_THAT(store_->MarkFailed(b1, now + absl::Seconds(10)), IsOk());
  due = store_->DueDeliveries(now, {}, 10);
  ASSERT_THAT(due, SizeIs(1));
  EXPECT_EQ(due[0].body, "a2");
  due = store_->DueDeliveries(now + absl::Seconds(11), {}, 10);
  ASSERT_THAT(due, SizeIs(2));
  EXPECT_EQ(due[0].body, "b1");
  EXPECT_EQ(due[0].attempts, 1);
  EXPECT_THAT(store_->MarkFailed(999999, now),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(EventStoreTest, RecordOutcomesAppliesManyResultsAtOnce) {
  SubscriptionRecord a = Subscribe("http://x/a");
  SubscriptionRecord b = Subscribe("http://x/b");
  ASSERT_THAT(
      store_->EnqueueEvent("ptp", 1, "e1", {{a.id, "a1"}, {b.id, "b1"}}),
      IsOk());
  ASSERT_THAT(store_->EnqueueEvent("ptp", 2, "e2", {{a.id, "a2"}}), IsOk());
  const absl::Time now = absl::Now();
  std::vector<OutboxRow> due = store_->DueDeliveries(now, {}, 10);
  ASSERT_THAT(due, SizeIs(2));
  ASSERT_THAT(store_->RecordOutcomes(
                  {{due[0].id, true, absl::InfinitePast()},
                   {due[1].id, false, now + absl::Seconds(5)},
                   {424242, true, absl::InfinitePast()}}),  // gone: skipped
              IsOk());
  due = store_->DueDeliveries(now, {}, 10);
  ASSERT_THAT(due, SizeIs(1));
  EXPECT_EQ(due[0].body, "a2");
  due = store_->DueDeliveries(now + absl::Seconds(6), {}, 10);
  ASSERT_THAT(due, SizeIs(2));
  EXPECT_EQ(due[0].body, "b1");  // enqueued before a2
  EXPECT_EQ(due[0].attempts, 1);
  EXPECT_THAT(store_->RecordOutcomes({}), IsOk());
}

TEST_F(EventStoreTest, DueDeliveriesForLooksAtTheGivenSubscriptionsOnly) {
  SubscriptionRecord a = Subscribe("http://x/a");
  SubscriptionRecord b = Subscribe("http://x/b");
  SubscriptionRecord c = Subscribe("http://x/c");
  ASSERT_THAT(store_->EnqueueEvent("ptp", 1, "e1",
                                   {{a.id, "a1"}, {b.id, "b1"}, {c.id, "c1"}}),
              IsOk());
  ASSERT_THAT(store_->EnqueueEvent("ptp", 2, "e2", {{a.id, "a2"}}), IsOk());
  const absl::Time now = absl::Now();
  const uint64_t b1 = store_->DueDeliveriesFor(now, {b.id})[0].id;
  ASSERT_THAT(store_->MarkFailed(b1, now + absl::Seconds(5)), IsOk());
  std::vector<OutboxRow> due =
      store_->DueDeliveriesFor(now, {c.id, b.id, a.id, "gone"});
  ASSERT_THAT(due, SizeIs(2));   // b waits for its retry
  EXPECT_EQ(due[0].body, "a1");  // oldest first
  EXPECT_EQ(due[1].body, "c1");
  EXPECT_THAT(store_->DueDeliveriesFor(now, {}), IsEmpty());
}

TEST_F(EventStoreTest, ConsecutiveFailuresArePersisted) {
  SubscriptionRecord a = Subscribe("http://x/a");
  ASSERT_THAT(store_->SetConsecutiveFailures(a.id, 4), IsOk());
  EXPECT_EQ(store_->FindSubscription(a.id)->consecutive_failures, 4);
  EXPECT_THAT(store_->SetConsecutiveFailures("nope", 1),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(EventStoreTest, RetentionDropsByAgeAndByCountAndSaysHowMany) {
  SubscriptionRecord a = Subscribe("http://x/a");
  SubscriptionRecord b = Subscribe("http://x/b");
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    ASSERT_THAT(store_->EnqueueEvent(
                    "ptp", seq, "e",
                    {{a.id, std::to_string(seq)}, {b.id, std::to_string(seq)}}),
                IsOk());
  }
  // Count: keep the newest 3 of each.
  auto dropped =
      store_->ApplyRetention(absl::Now(), absl::InfiniteDuration(), 3);
  ASSERT_THAT(dropped, IsOk());
  EXPECT_THAT(*dropped, UnorderedElementsAre(Pair(a.id, 2u), Pair(b.id, 2u)));
  std::vector<OutboxRow> due =
      store_->DueDeliveries(absl::InfiniteFuture(), {}, 10);
  ASSERT_THAT(due, SizeIs(2));
  EXPECT_EQ(due[0].body, "3");
  // Nothing over the limits: nothing dropped.
  dropped = store_->ApplyRetention(absl::Now(), absl::Hours(1), 3);
  ASSERT_THAT(dropped, IsOk());
  EXPECT_THAT(*dropped, IsEmpty());
  // Age: everything enqueued more than a minute before "now".
  dropped = store_->ApplyRetention(absl::Now() + absl::Minutes(2),
                                   absl::Minutes(1), 0);
  ASSERT_THAT(dropped, IsOk());
  EXPECT_THAT(*dropped, UnorderedElementsAre(Pair(a.id, 3u), Pair(b.id, 3u)));
  EXPECT_EQ(store_->OutboxDepth(), 0u);
}

TEST_F(EventStoreTest, RetentionByAgeDropsEachSubscriptionsOldRowsOnly) {
  SubscriptionRecord a = Subscribe("http://x/a");
  SubscriptionRecord b = Subscribe("http://x/b");
  auto enqueue = [&](uint64_t seq, const std::vector<SubscriptionRecord>& to) {
    std::vector<EventStore::Delivery> deliveries;
    for (const SubscriptionRecord& s : to) {
      deliveries.push_back({s.id, std::to_string(seq)});
    }
    ASSERT_THAT(store_->EnqueueEvent("ptp", seq, "e", deliveries), IsOk());
  };
  enqueue(1, {a, b});
  enqueue(2, {a});
  // The cutoff falls between event 2 and event 3 (row times are in us).
  const absl::Time cutoff = absl::Now() + absl::Microseconds(1);
  ASSERT_TRUE(WaitFor([&] { return absl::Now() > cutoff; }, absl::Seconds(1),
                      "the clock past the cutoff"));
  enqueue(3, {a, b});
  auto dropped =
      store_->ApplyRetention(cutoff + absl::Minutes(1), absl::Minutes(1), 0);
  ASSERT_THAT(dropped, IsOk());
  EXPECT_THAT(*dropped, UnorderedElementsAre(Pair(a.id, 2u), Pair(b.id, 1u)));
  std::vector<OutboxRow> due =
      store_->DueDeliveries(absl::InfiniteFuture(), {}, 10);
  ASSERT_THAT(due, SizeIs(2));
  EXPECT_EQ(due[0].body, "3");
  EXPECT_EQ(due[1].body, "3");
  EXPECT_EQ(store_->OutboxDepth(), 2u);
}

TEST_F(EventStoreTest, StatsCoverEverySubscription) {
  SubscriptionRecord a = Subscribe("http://x/a");
  SubscriptionRecord b = Subscribe("http://x/b");
  const absl::Time before = absl::Now();
  ASSERT_THAT(store_->EnqueueEvent("ptp", 1, "e", {{a.id, "1"}}), IsOk());
  ASSERT_THAT(store_->EnqueueEvent("ptp", 2, "e", {{a.id, "2"}}), IsOk());
  std::vector<OutboxStats> stats = store_->Stats();
  ASSERT_THAT(stats, SizeIs(2));
  for (const OutboxStats& s : stats) {
    if (s.subscription_id == a.id) {
      EXPECT_EQ(s.depth, 2u);
      EXPECT_EQ(s.endpoint, "http://x/a");
      EXPECT_GE(s.oldest, before - absl::Milliseconds(1));
      EXPECT_LE(s.oldest, absl::Now());
    } else {
      EXPECT_EQ(s.subscription_id, b.id);
      EXPECT_EQ(s.depth, 0u);
      EXPECT_EQ(s.oldest, absl::InfiniteFuture());
    }
  }
}

TEST_F(EventStoreTest, ConcurrentWritersDoNotLoseRows) {
  SubscriptionRecord a = Subscribe("http://x/a");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t i = 0; i < 50; ++i) {
        EXPECT_THAT(store_->EnqueueEvent("src" + std::to_string(t), i + 1, "e",
                                         {{a.id, "x"}}),
                    IsOk());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(store_->OutboxDepth(), 200u);
}

}  // namespace
}  // namespace loophost::host
