// Implementation of EventStore (event_store.h) on the SQLite C API: one
// connection in WAL mode behind a mutex (checkpoints run on a second one, the
// WalCheckpointer's), prepared statements kept for the connection's life,
// forward-only migrations recorded in schema_version.
#include "host/event_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "host/wal_checkpointer.h"

namespace loophost::host {
namespace {

// Each entry moves the schema one version forward; entry i gives version i+1.
// Never edit a released entry: append a new one.
constexpr const char* kMigrations[] = {
    // 1: publishers, subscriptions, source cursors, outbox.
    R"sql(
CREATE TABLE publishers (
  id TEXT PRIMARY KEY,
  resource_address TEXT NOT NULL UNIQUE,
  event_type TEXT NOT NULL,
  source_plugin TEXT NOT NULL,
  endpoint_uri TEXT NOT NULL DEFAULT ''
);
CREATE TABLE subscriptions (
  id TEXT PRIMARY KEY,
  api_version INTEGER NOT NULL CHECK (api_version IN (1, 2)),
  resource_address TEXT NOT NULL CHECK (resource_address <> ''),
  endpoint TEXT NOT NULL CHECK (endpoint <> ''),
  created_us INTEGER NOT NULL,
  consecutive_failures INTEGER NOT NULL DEFAULT 0,
  UNIQUE (endpoint, resource_address)
);
CREATE TABLE source_cursors (
  source_plugin TEXT PRIMARY KEY,
  sequence INTEGER NOT NULL
);
CREATE TABLE outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  subscription_id TEXT NOT NULL
      REFERENCES subscriptions(id) ON DELETE CASCADE,
  endpoint TEXT NOT NULL,
  event_id TEXT NOT NULL,
  body BLOB NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  enqueued_us INTEGER NOT NULL,
  next_attempt_us INTEGER NOT NULL
);
CREATE INDEX outbox_by_subscription ON outbox (subscription_id, id);
CREATE INDEX outbox_by_age ON outbox (enqueued_us);
)sql",
    // 2: an event's body is stored once per shape (v1, v2), not once per
    // subscriber; the last outbox row to go takes its body with it.
    R"sql(
CREATE TABLE bodies (
  id INTEGER PRIMARY KEY,
  body BLOB NOT NULL
);
INSERT INTO bodies (id, body) SELECT id, body FROM outbox;
CREATE TABLE outbox_v2 (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  subscription_id TEXT NOT NULL
      REFERENCES subscriptions(id) ON DELETE CASCADE,
  endpoint TEXT NOT NULL,
  event_id TEXT NOT NULL,
  body_id INTEGER NOT NULL REFERENCES bodies(id),
  attempts INTEGER NOT NULL DEFAULT 0,
  enqueued_us INTEGER NOT NULL,
  next_attempt_us INTEGER NOT NULL
);
INSERT INTO outbox_v2 (id, subscription_id, endpoint, event_id, body_id,
                       attempts, enqueued_us, next_attempt_us)
  SELECT id, subscription_id, endpoint, event_id, id, attempts, enqueued_us,
         next_attempt_us FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v2 RENAME TO outbox;
CREATE INDEX outbox_by_subscription ON outbox (subscription_id, id);
CREATE INDEX outbox_by_age ON outbox (enqueued_us);
CREATE INDEX outbox_by_body ON outbox (body_id);
CREATE TRIGGER outbox_body_gone AFTER DELETE ON outbox
  WHEN NOT EXISTS (SELECT 1 FROM outbox WHERE body_id = OLD.body_id)
  BEGIN DELETE FROM bodies WHERE id = OLD.body_id; END;
)sql",
    // 3: no index by age. A subscription's rows are in enqueue order, so the
    // index by subscription serves retention by age and the oldest row's age;
    // every row written and deleted paid for the second index.
    R"sql(
DROP INDEX outbox_by_age;
)sql",
    // 4: no index by body, no trigger and no foreign key to bodies. Bodies are
    // numbered in enqueue order as rows are, so the bodies numbered below the
    // oldest row's are the unreferenced ones; CollectBodiesLocked deletes
    // them after each transaction that deletes rows. Every row written and
    // deleted paid for the index, and every delete for the trigger's lookup.
    // The outbox's numbering goes on from where it was, even when it is empty.
    R"sql(
CREATE TABLE outbox_v4 (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  subscription_id TEXT NOT NULL
      REFERENCES subscriptions(id) ON DELETE CASCADE,
  endpoint TEXT NOT NULL,
  event_id TEXT NOT NULL,
  body_id INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  enqueued_us INTEGER NOT NULL,
  next_attempt_us INTEGER NOT NULL
);
INSERT INTO outbox_v4 (id, subscription_id, endpoint, event_id, body_id,
                       attempts, enqueued_us, next_attempt_us)
  SELECT id, subscription_id, endpoint, event_id, body_id, attempts,
         enqueued_us, next_attempt_us FROM outbox;
DELETE FROM sqlite_sequence WHERE name = 'outbox_v4';
INSERT INTO sqlite_sequence (name, seq)
  SELECT 'outbox_v4', seq FROM sqlite_sequence WHERE name = 'outbox';
DROP TABLE outbox;
ALTER TABLE outbox_v4 RENAME TO outbox;
CREATE INDEX outbox_by_subscription ON outbox (subscription_id, id);
)sql",
    // 5: outbox rows refer to their subscription by an integer and carry no
    // text: the endpoint is the subscription's, the event id goes with the
    // body. A row was about 130 bytes, mostly the subscription's UUID, the
    // endpoint and the event id, and its index entry 45; every event's rows
    // touch every leaf of the index, so each commit wrote three times the
    // pages it now does.
    R"sql(
CREATE TABLE subscriptions_v5 (
  num INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  api_version INTEGER NOT NULL CHECK (api_version IN (1, 2)),
  resource_address TEXT NOT NULL CHECK (resource_address <> ''),
  endpoint TEXT NOT NULL CHECK (endpoint <> ''),
  created_us INTEGER NOT NULL,
  consecutive_failures INTEGER NOT NULL DEFAULT 0,
  UNIQUE (endpoint, resource_address)
);
INSERT INTO subscriptions_v5 (id, api_version, resource_address, endpoint,
                              created_us, consecutive_failures)
  SELECT id, api_version, resource_address, endpoint, created_us,
         consecutive_failures FROM subscriptions ORDER BY created_us, id;
ALTER TABLE bodies ADD COLUMN event_id TEXT NOT NULL DEFAULT '';
UPDATE bodies SET event_id = o.event_id
  FROM (SELECT body_id, MIN(event_id) AS event_id FROM outbox
        GROUP BY body_id) AS o
  WHERE o.body_id = bodies.id;
CREATE TABLE outbox_v5 (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  subscription INTEGER NOT NULL
      REFERENCES subscriptions(num) ON DELETE CASCADE,
  body_id INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  enqueued_us INTEGER NOT NULL,
  next_attempt_us INTEGER NOT NULL
);
INSERT INTO outbox_v5 (id, subscription, body_id, attempts, enqueued_us,
                       next_attempt_us)
  SELECT o.id, s.num, o.body_id, o.attempts, o.enqueued_us, o.next_attempt_us
  FROM outbox o JOIN subscriptions_v5 s ON s.id = o.subscription_id;
DELETE FROM sqlite_sequence WHERE name = 'outbox_v5';
INSERT INTO sqlite_sequence (name, seq)
  SELECT 'outbox_v5', seq FROM sqlite_sequence WHERE name = 'outbox';
DROP TABLE outbox;
DROP TABLE subscriptions;
ALTER TABLE subscriptions_v5 RENAME TO subscriptions;
ALTER TABLE outbox_v5 RENAME TO outbox;
CREATE INDEX outbox_by_subscription ON outbox (subscription, id);
)sql",
};
constexpr int kSchemaVersion = sizeof(kMigrations) / sizeof(kMigrations[0]);

// The bodies numbered below the oldest row's (all of them when the outbox is
// empty): no row refers to them (schema 4).
constexpr char kCollectBodies[] =
    "DELETE FROM bodies WHERE id < COALESCE((SELECT body_id FROM outbox "
    "ORDER BY id LIMIT 1), 9223372036854775807)";

int64_t ToMicros(absl::Time t) {
  if (t == absl::InfinitePast()) return INT64_MIN;
  if (t == absl::InfiniteFuture()) return INT64_MAX;
  return absl::ToUnixMicros(t);
}
absl::Time FromMicros(int64_t us) {
  if (us == INT64_MIN) return absl::InfinitePast();
  if (us == INT64_MAX) return absl::InfiniteFuture();
  return absl::FromUnixMicros(us);
}

// A prepared statement, reset after each use (Run/Step loop).
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  absl::Status Prepare(sqlite3* db, const char* sql) {
    db_ = db;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_,
                           nullptr) != SQLITE_OK) {
      return absl::InternalError(
          absl::StrCat("sqlite prepare: ", sqlite3_errmsg(db), ": ", sql));
    }
    return absl::OkStatus();
  }

  // Binds, 1-based, in order.
  Statement& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  Statement& BindBlob(int i, const std::string& v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  // Runs a statement without result rows.
  absl::Status Run(const char* what) {
    const int rc = Step();
    absl::Status status =
        rc == SQLITE_DONE ? absl::OkStatus() : Error(rc, what);
    Reset();
    return status;
  }
  absl::Status Error(int rc, const char* what) const {
    const int extended = sqlite3_extended_errcode(db_);
    std::string message = absl::StrCat(what, ": ", sqlite3_errmsg(db_));
    if (extended == SQLITE_CONSTRAINT_UNIQUE ||
        extended == SQLITE_CONSTRAINT_PRIMARYKEY) {
      return absl::AlreadyExistsError(message);
    }
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
      return absl::InvalidArgumentError(message);
    }
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
      return absl::UnavailableError(message);
    }
    return absl::InternalError(message);
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const {
    return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
  }
  // Valid until the next Step or Reset.
  std::string_view TextView(int col) const {
    const auto* p = sqlite3_column_blob(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string_view()
                        : std::string_view(static_cast<const char*>(p),
                                           static_cast<size_t>(n));
  }
  std::string Text(int col) const { return std::string(TextView(col)); }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

std::string NewUuid() {
  static absl::Mutex mu(absl::kConstInit);
  static std::mt19937_64* rng ABSL_GUARDED_BY(mu) = nullptr;
  uint64_t hi, lo;
  {
    absl::MutexLock lock(&mu);
    if (rng == nullptr) {
      std::random_device rd;
      std::seed_seq seed{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
      rng = new std::mt19937_64(seed);
    }
    hi = (*rng)();
    lo = (*rng)();
  }
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", hi >> 32,
                         (hi >> 16) & 0xffff, hi & 0xffff, lo >> 48,
                         lo & 0xffffffffffffULL);
}

class EventStore::Impl {
 public:
  ~Impl() {
    // Statements must be finalized before the connection closes; the
    // checkpointer's connection goes first, so closing db_ (the last one)
    // checkpoints what is left and removes the log.
    statements_.clear();
    checkpointer_.reset();
    if (db_ != nullptr) sqlite3_close_v2(db_);
  }

  absl::Status Open(const std::string& path) {
    absl::MutexLock lock(&mu_);
    const int rc = sqlite3_open_v2(
        path.c_str(), &db_,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
        nullptr);
    if (rc != SQLITE_OK) {
      std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
      return absl::FailedPreconditionError(
          absl::StrCat(path, ": cannot open the database: ", why));
    }
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, 5000);
    // WAL with synchronous=NORMAL: a committed transaction survives the
    // process being killed (the WAL is written before COMMIT returns); only a
    // power loss may take the last ones back.
    LH_RETURN_IF_ERROR(ExecLocked("PRAGMA journal_mode=WAL", path));
    LH_RETURN_IF_ERROR(ExecLocked("PRAGMA synchronous=NORMAL", path));
    // Up to 16 MB of pages cached (SQLite's default is 2 MB): an outbox for
    // a thousand subscribers is read from memory, not re-read from the files.
    // The cache grows only as far as the database does.
    LH_RETURN_IF_ERROR(ExecLocked("PRAGMA cache_size=-16384", path));
    // Migrations rebuild tables that others refer to: foreign keys are
    // enforced from after them on (checked at their end).
    LH_RETURN_IF_ERROR(MigrateLocked(path));
    LH_RETURN_IF_ERROR(ExecLocked("PRAGMA foreign_keys=ON", path));
    // Checkpoints on their own thread: a commit never waits for one.
    LH_ASSIGN_OR_RETURN(checkpointer_, WalCheckpointer::Start(path));
    checkpointer_->HookInto(db_);
    return absl::OkStatus();
  }

  absl::Status ExecLocked(const std::string& sql, const std::string& what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      std::string message = error != nullptr ? error : sqlite3_errmsg(db_);
      sqlite3_free(error);
      return absl::InternalError(absl::StrCat(what, ": ", message));
    }
    return absl::OkStatus();
  }

  absl::Status MigrateLocked(const std::string& path)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    LH_RETURN_IF_ERROR(ExecLocked("BEGIN IMMEDIATE", path));
    absl::Status status = [&]() -> absl::Status {
      LH_RETURN_IF_ERROR(ExecLocked(
          "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT "
          "NULL)",
          path));
      int version = 0;
      bool has_row = false;
      {
        Statement q;
        LH_RETURN_IF_ERROR(
            q.Prepare(db_, "SELECT version FROM schema_version"));
        if (q.Step() == SQLITE_ROW) {
          version = static_cast<int>(q.Int(0));
          has_row = true;
        }
      }
      if (version > kSchemaVersion) {
        return absl::FailedPreconditionError(absl::StrCat(
            path, ": database schema version ", version,
            " is newer than this loophost knows (", kSchemaVersion, ")"));
      }
      for (int v = version; v < kSchemaVersion; ++v) {
        LH_RETURN_IF_ERROR(ExecLocked(
            kMigrations[v], absl::StrCat(path, ": migration to ", v + 1)));
      }
      if (version > 0 && version < kSchemaVersion) {
        Statement check;
        LH_RETURN_IF_ERROR(check.Prepare(db_, "PRAGMA foreign_key_check"));
        if (check.Step() == SQLITE_ROW) {
          return absl::InternalError(
              absl::StrCat(path, ": migration from ", version, " left table ",
                           check.Text(0), " referring to a missing row"));
        }
      }
      const std::string set =
          has_row ? absl::StrCat("UPDATE schema_version SET version = ",
                                 kSchemaVersion)
                  : absl::StrCat("INSERT INTO schema_version VALUES (",
                                 kSchemaVersion, ")");
      return ExecLocked(set, path);
    }();
    if (!status.ok()) {
      (void)ExecLocked("ROLLBACK", path);
      return status;
    }
    return ExecLocked("COMMIT", path);
  }

  // The statement for `sql`, prepared on first use.
  absl::StatusOr<Statement*> Stmt(const char* sql)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second.get();
    auto stmt = std::make_unique<Statement>();
    LH_RETURN_IF_ERROR(stmt->Prepare(db_, sql));
    Statement* raw = stmt.get();
    statements_.emplace(sql, std::move(stmt));
    return raw;
  }

  // Runs `body` in one IMMEDIATE transaction: committed if it returns OK,
  // rolled back otherwise. mu_ must be held (not annotated: clang cannot
  // name mu_ after a trailing return type).
  template <typename F>
  auto InTransaction(F body) -> decltype(body()) {
    LH_RETURN_IF_ERROR(ExecLocked("BEGIN IMMEDIATE", "begin"));
    auto result = body();
    if (!result.ok()) {
      (void)ExecLocked("ROLLBACK", "rollback");
      return result;
    }
    if (absl::Status commit = ExecLocked("COMMIT", "commit"); !commit.ok()) {
      (void)ExecLocked("ROLLBACK", "rollback");
      return commit;
    }
    return result;
  }

  // Deletes the bodies no row refers to any more; every transaction that
  // deletes outbox rows ends with it.
  absl::Status CollectBodiesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    LH_ASSIGN_OR_RETURN(Statement * collect, Stmt(kCollectBodies));
    return collect->Run("collect bodies");
  }

  // Runs `body` in one read transaction: its statements see one snapshot
  // and take SQLite's locks once rather than each. If the transaction cannot
  // begin, each statement runs on its own. mu_ must be held.
  template <typename F>
  void InReadTransaction(F body) {
    const bool began = ExecLocked("BEGIN", "begin").ok();
    body();
    if (began) (void)ExecLocked("COMMIT", "commit");
  }

  sqlite3* db_ = nullptr;
  std::unique_ptr<WalCheckpointer> checkpointer_;
  mutable absl::Mutex mu_;
  // Keyed by the SQL text's address: every caller passes a literal.
  std::map<const char*, std::unique_ptr<Statement>> statements_
      ABSL_GUARDED_BY(mu_);
};

namespace {

PublisherRecord ReadPublisher(const Statement& s) {
  return PublisherRecord{s.Text(0), s.Text(1), s.Text(2), s.Text(3), s.Text(4)};
}

SubscriptionRecord ReadSubscription(const Statement& s) {
  SubscriptionRecord r;
  r.id = s.Text(0);
  r.api_version = static_cast<int>(s.Int(1));
  r.resource_address = s.Text(2);
  r.endpoint = s.Text(3);
  r.created = FromMicros(s.Int(4));
  r.consecutive_failures = static_cast<int>(s.Int(5));
  return r;
}

OutboxRow ReadOutboxRow(const Statement& s) {
  OutboxRow r;
  r.id = static_cast<uint64_t>(s.Int(0));
  r.subscription_id = s.Text(1);
  r.endpoint = s.Text(2);
  r.event_id = s.Text(3);
  r.body = s.Text(4);
  r.attempts = static_cast<int>(s.Int(5));
  r.enqueued = FromMicros(s.Int(6));
  r.next_attempt = FromMicros(s.Int(7));
  return r;
}

constexpr char kSelectPublisherByResource[] =
    "SELECT id, resource_address, event_type, source_plugin, endpoint_uri "
    "FROM publishers WHERE resource_address = ?1";
constexpr char kSelectPublisherById[] =
    "SELECT id, resource_address, event_type, source_plugin, endpoint_uri "
    "FROM publishers WHERE id = ?1";
constexpr char kSelectPublishers[] =
    "SELECT id, resource_address, event_type, source_plugin, endpoint_uri "
    "FROM publishers ORDER BY resource_address";
constexpr char kInsertPublisher[] =
    "INSERT INTO publishers (id, resource_address, event_type, source_plugin, "
    "endpoint_uri) VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr char kUpdatePublisher[] =
    "UPDATE publishers SET event_type = ?2, source_plugin = ?3, "
    "endpoint_uri = ?4 WHERE id = ?1";

constexpr char kSelectSubscriptions[] =
    "SELECT id, api_version, resource_address, endpoint, created_us, "
    "consecutive_failures FROM subscriptions ORDER BY created_us, id";
constexpr char kSelectSubscriptionById[] =
    "SELECT id, api_version, resource_address, endpoint, created_us, "
    "consecutive_failures FROM subscriptions WHERE id = ?1";
constexpr char kInsertSubscription[] =
    "INSERT INTO subscriptions (id, api_version, resource_address, endpoint, "
    "created_us, consecutive_failures) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
constexpr char kDeleteSubscription[] =
    "DELETE FROM subscriptions WHERE id = ?1";
constexpr char kDeleteSubscriptions[] = "DELETE FROM subscriptions";
constexpr char kSetFailures[] =
    "UPDATE subscriptions SET consecutive_failures = ?2 WHERE id = ?1";

constexpr char kSelectCursor[] =
    "SELECT sequence FROM source_cursors WHERE source_plugin = ?1";
constexpr char kUpsertCursor[] =
    "INSERT INTO source_cursors (source_plugin, sequence) VALUES (?1, ?2) "
    "ON CONFLICT (source_plugin) DO UPDATE SET sequence = excluded.sequence";
constexpr char kInsertBody[] =
    "INSERT INTO bodies (event_id, body) VALUES (?1, ?2)";
// A subscription deleted meanwhile gets no row (instead of failing the whole
// event on the foreign key).
constexpr char kInsertOutbox[] =
    "INSERT INTO outbox (subscription, body_id, attempts, enqueued_us, "
    "next_attempt_us) SELECT num, ?2, 0, ?3, ?3 FROM subscriptions "
    "WHERE id = ?1";
constexpr char kDeleteBody[] = "DELETE FROM bodies WHERE id = ?1";
// Outbox rows, as ReadOutboxRow reads them: o the row, s its subscription
// (id, endpoint), b its body (event id, body). kSelectDue: each
// subscription's oldest row, if due, oldest first.
constexpr char kSelectDue[] =
    "SELECT o.id, s.id, s.endpoint, b.event_id, b.body, o.attempts, "
    "o.enqueued_us, o.next_attempt_us FROM subscriptions s JOIN outbox o ON "
    "o.id = (SELECT MIN(id) FROM outbox WHERE subscription = s.num) "
    "JOIN bodies b ON b.id = o.body_id WHERE o.next_attempt_us <= ?1 "
    "ORDER BY o.id";
constexpr char kSelectHead[] =
    "SELECT o.id, s.id, s.endpoint, b.event_id, b.body, o.attempts, "
    "o.enqueued_us, o.next_attempt_us FROM subscriptions s JOIN outbox o ON "
    "o.subscription = s.num JOIN bodies b ON b.id = o.body_id "
    "WHERE s.id = ?1 ORDER BY o.id LIMIT 1";
constexpr char kSelectAfter[] =
    "SELECT o.id, s.id, s.endpoint, b.event_id, b.body, o.attempts, "
    "o.enqueued_us, o.next_attempt_us FROM subscriptions s JOIN outbox o ON "
    "o.subscription = s.num JOIN bodies b ON b.id = o.body_id "
    "WHERE s.id = ?1 AND o.id > ?2 ORDER BY o.id LIMIT ?3";
constexpr char kNextRetry[] =
    "SELECT MIN(o.next_attempt_us) FROM subscriptions s JOIN outbox o ON o.id "
    "= (SELECT MIN(id) FROM outbox WHERE subscription = s.num) WHERE "
    "o.next_attempt_us > ?1";
constexpr char kDeleteOutboxRow[] = "DELETE FROM outbox WHERE id = ?1";
constexpr char kFailOutboxRow[] =
    "UPDATE outbox SET attempts = attempts + 1, next_attempt_us = ?2 "
    "WHERE id = ?1";
constexpr char kSubscriptionNums[] = "SELECT num, id FROM subscriptions";
// A subscription's rows from its oldest (retention by age reads up to the
// first one young enough).
constexpr char kOldestRows[] =
    "SELECT id, enqueued_us FROM outbox WHERE subscription = ?1 ORDER BY id";
constexpr char kDeleteThrough[] =
    "DELETE FROM outbox WHERE subscription = ?1 AND id <= ?2";
constexpr char kCountOver[] =
    "SELECT s.num, s.id, COUNT(*) FROM outbox o JOIN subscriptions s ON "
    "s.num = o.subscription GROUP BY o.subscription HAVING COUNT(*) > ?1";
constexpr char kDeleteOldest[] =
    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE "
    "subscription = ?1 ORDER BY id LIMIT ?2)";
// Depth from the index alone; the oldest row is the first in row order.
constexpr char kStats[] =
    "SELECT s.id, s.endpoint, (SELECT COUNT(*) FROM outbox WHERE "
    "subscription = s.num), (SELECT enqueued_us FROM outbox WHERE "
    "subscription = s.num ORDER BY id LIMIT 1) FROM subscriptions s "
    "ORDER BY s.id";
constexpr char kDepth[] = "SELECT COUNT(*) FROM outbox";

}  // namespace

EventStore::EventStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EventStore::~EventStore() = default;

absl::StatusOr<std::unique_ptr<EventStore>> EventStore::Open(
    const std::string& path) {
  auto impl = std::make_unique<Impl>();
  LH_RETURN_IF_ERROR(impl->Open(path));
  return std::unique_ptr<EventStore>(new EventStore(std::move(impl)));
}

absl::StatusOr<PublisherRecord> EventStore::UpsertPublisher(
    PublisherRecord publisher) {
  if (publisher.resource_address.empty()) {
    return absl::InvalidArgumentError("publisher: empty resource address");
  }
  absl::MutexLock lock(&impl_->mu_);
  return impl_->InTransaction([&]() -> absl::StatusOr<PublisherRecord> {
    LH_ASSIGN_OR_RETURN(Statement * find,
                        impl_->Stmt(kSelectPublisherByResource));
    find->Bind(1, publisher.resource_address);
    std::optional<PublisherRecord> existing;
    const int rc = find->Step();
    if (rc == SQLITE_ROW) existing = ReadPublisher(*find);
    absl::Status error = rc == SQLITE_ROW || rc == SQLITE_DONE
                             ? absl::OkStatus()
                             : find->Error(rc, "find publisher");
    find->Reset();
    LH_RETURN_IF_ERROR(error);
    if (existing) {
      publisher.id = existing->id;
      LH_ASSIGN_OR_RETURN(Statement * update, impl_->Stmt(kUpdatePublisher));
      update->Bind(1, publisher.id)
          .Bind(2, publisher.event_type)
          .Bind(3, publisher.source_plugin)
          .Bind(4, publisher.endpoint_uri);
      LH_RETURN_IF_ERROR(update->Run("update publisher"));
      return publisher;
    }
    if (publisher.id.empty()) publisher.id = NewUuid();
    LH_ASSIGN_OR_RETURN(Statement * insert, impl_->Stmt(kInsertPublisher));
    insert->Bind(1, publisher.id)
        .Bind(2, publisher.resource_address)
        .Bind(3, publisher.event_type)
        .Bind(4, publisher.source_plugin)
        .Bind(5, publisher.endpoint_uri);
    LH_RETURN_IF_ERROR(insert->Run("insert publisher"));
    return publisher;
  });
}

std::vector<PublisherRecord> EventStore::ListPublishers() const {
  absl::MutexLock lock(&impl_->mu_);
  std::vector<PublisherRecord> out;
  auto stmt = impl_->Stmt(kSelectPublishers);
  if (!stmt.ok()) return out;
  while ((*stmt)->Step() == SQLITE_ROW) out.push_back(ReadPublisher(**stmt));
  (*stmt)->Reset();
  return out;
}

std::optional<PublisherRecord> EventStore::FindPublisher(
    const std::string& id) const {
  absl::MutexLock lock(&impl_->mu_);
  auto stmt = impl_->Stmt(kSelectPublisherById);
  if (!stmt.ok()) return std::nullopt;
  (*stmt)->Bind(1, id);
  std::optional<PublisherRecord> out;
  if ((*stmt)->Step() == SQLITE_ROW) out = ReadPublisher(**stmt);
  (*stmt)->Reset();
  return out;
}

std::optional<PublisherRecord> EventStore::FindPublisherByResource(
    const std::string& resource_address) const {
  absl::MutexLock lock(&impl_->mu_);
  auto stmt = impl_->Stmt(kSelectPublisherByResource);
  if (!stmt.ok()) return std::nullopt;
  (*stmt)->Bind(1, resource_address);
  std::optional<PublisherRecord> out;
  if ((*stmt)->Step() == SQLITE_ROW) out = ReadPublisher(**stmt);
  (*stmt)->Reset();
  return out;
}

absl::StatusOr<SubscriptionRecord> EventStore::AddSubscription(
    SubscriptionRecord subscription) {
  if (subscription.id.empty()) subscription.id = NewUuid();
  if (subscription.created == absl::InfinitePast()) {
    subscription.created = absl::Now();
  }
  absl::MutexLock lock(&impl_->mu_);
  LH_ASSIGN_OR_RETURN(Statement * insert, impl_->Stmt(kInsertSubscription));
  insert->Bind(1, subscription.id)
      .Bind(2, subscription.api_version)
      .Bind(3, subscription.resource_address)
      .Bind(4, subscription.endpoint)
      .Bind(5, ToMicros(subscription.created))
      .Bind(6, subscription.consecutive_failures);
  absl::Status status = insert->Run("add subscription");
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError(absl::StrCat(
        "endpoint ", subscription.endpoint, " is already subscribed to ",
        subscription.resource_address));
  }
  LH_RETURN_IF_ERROR(status);
  return subscription;
}

std::vector<SubscriptionRecord> EventStore::ListSubscriptions() const {
  absl::MutexLock lock(&impl_->mu_);
  std::vector<SubscriptionRecord> out;
  auto stmt = impl_->Stmt(kSelectSubscriptions);
  if (!stmt.ok()) return out;
  while ((*stmt)->Step() == SQLITE_ROW) {
    out.push_back(ReadSubscription(**stmt));
  }
  (*stmt)->Reset();
  return out;
}

std::optional<SubscriptionRecord> EventStore::FindSubscription(
    const std::string& id) const {
  absl::MutexLock lock(&impl_->mu_);
  auto stmt = impl_->Stmt(kSelectSubscriptionById);
  if (!stmt.ok()) return std::nullopt;
  (*stmt)->Bind(1, id);
  std::optional<SubscriptionRecord> out;
  if ((*stmt)->Step() == SQLITE_ROW) out = ReadSubscription(**stmt);
  (*stmt)->Reset();
  return out;
}

absl::Status EventStore::DeleteSubscription(const std::string& id) {
  absl::MutexLock lock(&impl_->mu_);
  return impl_->InTransaction([&]() -> absl::Status {
    LH_ASSIGN_OR_RETURN(Statement * del, impl_->Stmt(kDeleteSubscription));
    del->Bind(1, id);
    LH_RETURN_IF_ERROR(del->Run("delete subscription"));  // rows cascade
    if (sqlite3_changes(impl_->db_) == 0) {
      return absl::NotFoundError(
          absl::StrCat("subscription ", id, " not found"));
    }
    return impl_->CollectBodiesLocked();
  });
}

absl::StatusOr<int> EventStore::DeleteAllSubscriptions() {
  absl::MutexLock lock(&impl_->mu_);
  return impl_->InTransaction([&]() -> absl::StatusOr<int> {
    LH_ASSIGN_OR_RETURN(Statement * del, impl_->Stmt(kDeleteSubscriptions));
    LH_RETURN_IF_ERROR(del->Run("delete subscriptions"));  // rows cascade
    const int deleted = sqlite3_changes(impl_->db_);
    LH_RETURN_IF_ERROR(impl_->CollectBodiesLocked());
    return deleted;
  });
}

uint64_t EventStore::SourceCursor(const std::string& source_plugin) const {
  absl::MutexLock lock(&impl_->mu_);
  auto stmt = impl_->Stmt(kSelectCursor);
  if (!stmt.ok()) return 0;
  (*stmt)->Bind(1, source_plugin);
  uint64_t out = 0;
  if ((*stmt)->Step() == SQLITE_ROW) {
    out = static_cast<uint64_t>((*stmt)->Int(0));
  }
  (*stmt)->Reset();
  return out;
}

absl::Status EventStore::SetSourceCursor(const std::string& source_plugin,
                                         uint64_t sequence) {
  absl::MutexLock lock(&impl_->mu_);
  LH_ASSIGN_OR_RETURN(Statement * upsert, impl_->Stmt(kUpsertCursor));
  upsert->Bind(1, source_plugin).Bind(2, static_cast<int64_t>(sequence));
  return upsert->Run("set source cursor");
}

absl::StatusOr<int> EventStore::EnqueueEvent(
    const std::string& source_plugin, uint64_t sequence,
    const std::string& event_id, const std::vector<Delivery>& deliveries) {
  const int64_t now = ToMicros(absl::Now());
  absl::MutexLock lock(&impl_->mu_);
  return impl_->InTransaction([&]() -> absl::StatusOr<int> {
    LH_ASSIGN_OR_RETURN(Statement * cursor, impl_->Stmt(kSelectCursor));
    cursor->Bind(1, source_plugin);
    uint64_t current = 0;
    if (cursor->Step() == SQLITE_ROW) {
      current = static_cast<uint64_t>(cursor->Int(0));
    }
    cursor->Reset();
    if (sequence <= current) return 0;
    int written = 0;
    LH_ASSIGN_OR_RETURN(Statement * insert_body, impl_->Stmt(kInsertBody));
    LH_ASSIGN_OR_RETURN(Statement * insert, impl_->Stmt(kInsertOutbox));
    // Each distinct body once (an event has one per API version).
    struct StoredBody {
      const std::string* body;
      int64_t id;
      bool used;  // a row took it
    };
    std::vector<StoredBody> bodies;
    for (const Delivery& d : deliveries) {
      auto it =
          std::find_if(bodies.begin(), bodies.end(),
                       [&](const StoredBody& b) { return *b.body == d.body; });
      if (it == bodies.end()) {
        insert_body->Bind(1, event_id).BindBlob(2, d.body);
        LH_RETURN_IF_ERROR(insert_body->Run("store body"));
        bodies.push_back(
            {&d.body, sqlite3_last_insert_rowid(impl_->db_), false});
        it = std::prev(bodies.end());
      }
      insert->Bind(1, d.subscription_id).Bind(2, it->id).Bind(3, now);
      LH_RETURN_IF_ERROR(insert->Run("enqueue"));
      const int changes = sqlite3_changes(impl_->db_);
      written += changes;
      it->used = it->used || changes > 0;
    }
    // A body no row took (its subscriptions were all deleted meanwhile).
    LH_ASSIGN_OR_RETURN(Statement * drop, impl_->Stmt(kDeleteBody));
    for (const StoredBody& b : bodies) {
      if (b.used) continue;
      drop->Bind(1, b.id);
      LH_RETURN_IF_ERROR(drop->Run("drop unused body"));
    }
    LH_ASSIGN_OR_RETURN(Statement * upsert, impl_->Stmt(kUpsertCursor));
    upsert->Bind(1, source_plugin).Bind(2, static_cast<int64_t>(sequence));
    LH_RETURN_IF_ERROR(upsert->Run("move source cursor"));
    return written;
  });
}

std::vector<OutboxRow> EventStore::DueDeliveries(
    absl::Time now, const std::vector<std::string>& busy, size_t limit) const {
  std::vector<OutboxRow> out;
  if (limit == 0) return out;
  absl::MutexLock lock(&impl_->mu_);
  auto stmt = impl_->Stmt(kSelectDue);
  if (!stmt.ok()) return out;
  (*stmt)->Bind(1, ToMicros(now));
  while (out.size() < limit && (*stmt)->Step() == SQLITE_ROW) {
    // Busy subscriptions' heads are skipped before their row is copied.
    if (!std::binary_search(busy.begin(), busy.end(), (*stmt)->TextView(1))) {
      out.push_back(ReadOutboxRow(**stmt));
    }
  }
  (*stmt)->Reset();
  return out;
}

std::vector<OutboxRow> EventStore::DueDeliveriesFor(
    absl::Time now, const std::vector<std::string>& subscription_ids) const {
  std::vector<OutboxRow> out;
  if (subscription_ids.empty()) return out;
  const int64_t now_us = ToMicros(now);
  absl::MutexLock lock(&impl_->mu_);
  auto stmt = impl_->Stmt(kSelectHead);
  if (!stmt.ok()) return out;
  impl_->InReadTransaction([&] {
    for (const std::string& id : subscription_ids) {
      (*stmt)->Bind(1, id);
      if ((*stmt)->Step() == SQLITE_ROW && (*stmt)->Int(7) <= now_us) {
        out.push_back(ReadOutboxRow(**stmt));
      }
      (*stmt)->Reset();
    }
  });
  std::sort(out.begin(), out.end(),
            [](const OutboxRow& a, const OutboxRow& b) { return a.id < b.id; });
  return out;
}

std::vector<OutboxRow> EventStore::RowsAfter(
    const std::vector<RowsAfterQuery>& queries) const {
  std::vector<OutboxRow> out;
  if (queries.empty()) return out;
  absl::MutexLock lock(&impl_->mu_);
  auto stmt = impl_->Stmt(kSelectAfter);
  if (!stmt.ok()) return out;
  impl_->InReadTransaction([&] {
    for (const RowsAfterQuery& q : queries) {
      if (q.limit == 0) continue;
      (*stmt)
          ->Bind(1, q.subscription_id)
          .Bind(2, static_cast<int64_t>(q.after_id))
          .Bind(3, static_cast<int64_t>(q.limit));
      while ((*stmt)->Step() == SQLITE_ROW) {
        out.push_back(ReadOutboxRow(**stmt));
      }
      (*stmt)->Reset();
    }
  });
  return out;
}

absl::Status EventStore::MarkDelivered(uint64_t row_id) {
  absl::MutexLock lock(&impl_->mu_);
  return impl_->InTransaction([&]() -> absl::Status {
    LH_ASSIGN_OR_RETURN(Statement * del, impl_->Stmt(kDeleteOutboxRow));
    del->Bind(1, static_cast<int64_t>(row_id));
    LH_RETURN_IF_ERROR(del->Run("mark delivered"));
    if (sqlite3_changes(impl_->db_) == 0) {
      return absl::NotFoundError(absl::StrCat("outbox row ", row_id, " gone"));
    }
    return impl_->CollectBodiesLocked();
  });
}

absl::Status EventStore::MarkFailed(uint64_t row_id, absl::Time next_attempt) {
  absl::MutexLock lock(&impl_->mu_);
  LH_ASSIGN_OR_RETURN(Statement * update, impl_->Stmt(kFailOutboxRow));
  update->Bind(1, static_cast<int64_t>(row_id)).Bind(2, ToMicros(next_attempt));
  LH_RETURN_IF_ERROR(update->Run("mark failed"));
  if (sqlite3_changes(impl_->db_) == 0) {
    return absl::NotFoundError(absl::StrCat("outbox row ", row_id, " gone"));
  }
  return absl::OkStatus();
}

absl::Status EventStore::RecordOutcomes(const std::vector<Outcome>& outcomes) {
  if (outcomes.empty()) return absl::OkStatus();
  absl::MutexLock lock(&impl_->mu_);
  return impl_->InTransaction([&]() -> absl::Status {
    LH_ASSIGN_OR_RETURN(Statement * del, impl_->Stmt(kDeleteOutboxRow));
    LH_ASSIGN_OR_RETURN(Statement * fail, impl_->Stmt(kFailOutboxRow));
    for (const Outcome& o : outcomes) {
      if (o.delivered) {
        del->Bind(1, static_cast<int64_t>(o.row_id));
        LH_RETURN_IF_ERROR(del->Run("mark delivered"));
      } else {
        fail->Bind(1, static_cast<int64_t>(o.row_id))
            .Bind(2, ToMicros(o.next_attempt));
        LH_RETURN_IF_ERROR(fail->Run("mark failed"));
      }
    }
    return impl_->CollectBodiesLocked();
  });
}

absl::Status EventStore::SetConsecutiveFailures(
    const std::string& subscription_id, int failures) {
  absl::MutexLock lock(&impl_->mu_);
  LH_ASSIGN_OR_RETURN(Statement * update, impl_->Stmt(kSetFailures));
  update->Bind(1, subscription_id).Bind(2, failures);
  LH_RETURN_IF_ERROR(update->Run("set consecutive failures"));
  if (sqlite3_changes(impl_->db_) == 0) {
    return absl::NotFoundError(
        absl::StrCat("subscription ", subscription_id, " not found"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>>
EventStore::ApplyRetention(absl::Time now, absl::Duration max_age,
                           uint64_t max_rows) {
  using Dropped = std::vector<std::pair<std::string, uint64_t>>;
  absl::MutexLock lock(&impl_->mu_);
  return impl_->InTransaction([&]() -> absl::StatusOr<Dropped> {
    std::map<std::string, uint64_t> dropped;
    if (max_age != absl::InfiniteDuration() && max_age > absl::ZeroDuration()) {
      const int64_t cutoff = ToMicros(now - max_age);
      std::vector<std::pair<int64_t, std::string>> subscriptions;  // num, id
      LH_ASSIGN_OR_RETURN(Statement * nums, impl_->Stmt(kSubscriptionNums));
      while (nums->Step() == SQLITE_ROW) {
        subscriptions.emplace_back(nums->Int(0), nums->Text(1));
      }
      nums->Reset();
      LH_ASSIGN_OR_RETURN(Statement * oldest, impl_->Stmt(kOldestRows));
      LH_ASSIGN_OR_RETURN(Statement * del, impl_->Stmt(kDeleteThrough));
      for (const auto& [num, id] : subscriptions) {
        // From the oldest row up to the first young enough: the cost is the
        // rows dropped, not the rows kept.
        uint64_t old_rows = 0;
        int64_t last_old = 0;
        oldest->Bind(1, num);
        while (oldest->Step() == SQLITE_ROW && oldest->Int(1) < cutoff) {
          ++old_rows;
          last_old = oldest->Int(0);
        }
        oldest->Reset();
        if (old_rows == 0) continue;
        del->Bind(1, num).Bind(2, last_old);
        LH_RETURN_IF_ERROR(del->Run("retention by age"));
        dropped[id] += old_rows;
      }
    }
    if (max_rows > 0) {
      struct Over {
        int64_t num;
        std::string id;
        uint64_t excess;
      };
      std::vector<Over> over;
      LH_ASSIGN_OR_RETURN(Statement * count, impl_->Stmt(kCountOver));
      count->Bind(1, static_cast<int64_t>(max_rows));
      while (count->Step() == SQLITE_ROW) {
        over.push_back({count->Int(0), count->Text(1),
                        static_cast<uint64_t>(count->Int(2)) - max_rows});
      }
      count->Reset();
      LH_ASSIGN_OR_RETURN(Statement * del, impl_->Stmt(kDeleteOldest));
      for (const Over& o : over) {
        del->Bind(1, o.num).Bind(2, static_cast<int64_t>(o.excess));
        LH_RETURN_IF_ERROR(del->Run("retention by count"));
        dropped[o.id] += o.excess;
      }
    }
    LH_RETURN_IF_ERROR(impl_->CollectBodiesLocked());
    return Dropped(dropped.begin(), dropped.end());
  });
}

std::vector<OutboxStats> EventStore::Stats() const {
  absl::MutexLock lock(&impl_->mu_);
  std::vector<OutboxStats> out;
  auto stmt = impl_->Stmt(kStats);
  if (!stmt.ok()) return out;
  while ((*stmt)->Step() == SQLITE_ROW) {
    OutboxStats s;
    s.subscription_id = (*stmt)->Text(0);
    s.endpoint = (*stmt)->Text(1);
    s.depth = static_cast<uint64_t>((*stmt)->Int(2));
    if (s.depth > 0) s.oldest = FromMicros((*stmt)->Int(3));
    out.push_back(std::move(s));
  }
  (*stmt)->Reset();
  return out;
}

absl::Time EventStore::NextRetryAfter(absl::Time now) const {
  absl::MutexLock lock(&impl_->mu_);
  auto stmt = impl_->Stmt(kNextRetry);
  if (!stmt.ok()) return absl::InfiniteFuture();
  (*stmt)->Bind(1, ToMicros(now));
  absl::Time out = absl::InfiniteFuture();
  if ((*stmt)->Step() == SQLITE_ROW && !(*stmt)->IsNull(0)) {
    out = FromMicros((*stmt)->Int(0));
  }
  (*stmt)->Reset();
  return out;
}

uint64_t EventStore::OutboxDepth() const {
  absl::MutexLock lock(&impl_->mu_);
  auto stmt = impl_->Stmt(kDepth);
  if (!stmt.ok()) return 0;
  uint64_t out = 0;
  if ((*stmt)->Step() == SQLITE_ROW) {
    out = static_cast<uint64_t>((*stmt)->Int(0));
  }
  (*stmt)->Reset();
  return out;
}

}  // namespace loophost::host
