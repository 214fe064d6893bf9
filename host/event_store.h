// EventStore: the host's durable state in one SQLite database (WAL) under
// LOOPHOST_STATE_DIR: publishers, subscriptions, per-source stream cursors and
// the outbox of undelivered events. Schema versioned, migrated forward at Open.
// Thread-safe (one connection behind a mutex; every multi-row change is one
// transaction, so a crash leaves either all of it or none).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace loophost::host {

// A random (version 4) UUID, as the store gives new records.
std::string NewUuid();

struct PublisherRecord {
  std::string id;  // UUID, stable across restarts for the same resource
  std::string
      resource_address;  // "/cluster/node/n1/sync/ptp-status/lock-state"
  std::string event_type;
  std::string source_plugin;  // the loop that publishes it, e.g. "ptp"
  std::string endpoint_uri;   // v1 shape field (the host's own API base)
};

struct SubscriptionRecord {
  std::string id;  // UUID
  int api_version =
      2;  // 1 or 2: the REST API it was created through (event shape)
  std::string resource_address;
  std::string endpoint;  // subscriber's http(s) URL
  absl::Time created = absl::InfinitePast();
  int consecutive_failures =
      0;  // connection failures in a row (optional removal)
};

struct OutboxRow {
  uint64_t id = 0;  // global order of enqueueing
  std::string subscription_id;
  std::string endpoint;
  std::string event_id;  // the CloudEvent id (repeats keep it)
  std::string body;      // encoded for the subscription's API version
  int attempts = 0;
  absl::Time enqueued = absl::InfinitePast();
  absl::Time next_attempt = absl::InfinitePast();
};

struct OutboxStats {
  std::string subscription_id;
  std::string endpoint;
  uint64_t depth = 0;
  absl::Time oldest = absl::InfiniteFuture();  // InfiniteFuture when empty
};

class EventStore {
 public:
  // Opens (creating) `path`, sets WAL and foreign keys, migrates to the current
  // schema.
  static absl::StatusOr<std::unique_ptr<EventStore>> Open(
      const std::string& path);
  ~EventStore();

  // Publishers. Upsert keeps an existing id for the same resource_address.
  absl::StatusOr<PublisherRecord> UpsertPublisher(PublisherRecord publisher);
  std::vector<PublisherRecord> ListPublishers() const;
  std::optional<PublisherRecord> FindPublisher(const std::string& id) const;
  std::optional<PublisherRecord> FindPublisherByResource(
      const std::string& resource_address) const;

  // Subscriptions. Add: AlreadyExists when the same endpoint is subscribed to
  // the same resource (whatever the version). Delete: NotFound for an unknown
  // id; deleting also drops its outbox rows. DeleteAll returns how many were
  // removed.
  absl::StatusOr<SubscriptionRecord> AddSubscription(
      SubscriptionRecord subscription);
  std::vector<SubscriptionRecord> ListSubscriptions() const;
  std::optional<SubscriptionRecord> FindSubscription(
      const std::string& id) const;
  absl::Status DeleteSubscription(const std::string& id);
  absl::StatusOr<int> DeleteAllSubscriptions();

  // Source cursors: the last stream sequence number stored for a source loop.
  uint64_t SourceCursor(const std::string& source_plugin) const;
  // Sets the cursor, also backwards: for a source that lost its numbering (it
  // answered a resume with sequences at or below the cursor).
  absl::Status SetSourceCursor(const std::string& source_plugin,
                               uint64_t sequence);

  // In one transaction: an outbox row per (subscription id, body) and the
  // source's cursor moved to `sequence`. An event with sequence <= the cursor
  // is ignored (a replay after a restart) and returns 0; else returns the
  // number of rows written.
  struct Delivery {
    std::string subscription_id;  // the row goes to its endpoint
    std::string body;
  };
  absl::StatusOr<int> EnqueueEvent(const std::string& source_plugin,
                                   uint64_t sequence,
                                   const std::string& event_id,
                                   const std::vector<Delivery>& deliveries);

  // The oldest undelivered row of each subscription whose next_attempt <= now,
  // skipping subscriptions in `busy` (sorted; those with rows in flight
  // already), at most `limit`.
  std::vector<OutboxRow> DueDeliveries(absl::Time now,
                                       const std::vector<std::string>& busy,
                                       size_t limit) const;
  // The same for the given subscriptions only (those whose delivery just
  // finished): one indexed lookup each instead of a pass over all, in one
  // read transaction.
  std::vector<OutboxRow> DueDeliveriesFor(
      absl::Time now, const std::vector<std::string>& subscription_ids) const;
  // For each query, the subscription's rows after row `after_id`, oldest
  // first, at most `limit` (those that may follow the rows already sent,
  // whatever their retry time); all in one read transaction.
  struct RowsAfterQuery {
    std::string subscription_id;
    uint64_t after_id = 0;
    size_t limit = 0;
  };
  std::vector<OutboxRow> RowsAfter(
      const std::vector<RowsAfterQuery>& queries) const;
  // The earliest next_attempt after `now` among the subscriptions' oldest
  // rows (when a retry comes due); InfiniteFuture if none waits.
  absl::Time NextRetryAfter(absl::Time now) const;
  // NotFound when the row is gone (retention, its subscription deleted).
  absl::Status MarkDelivered(uint64_t row_id);  // deletes the row
  absl::Status MarkFailed(uint64_t row_id,
                          absl::Time next_attempt);  // attempts+1
  // Many results in one transaction: a delivered row is deleted, a failed one
  // gets attempts+1 and its next attempt. Rows already gone are skipped.
  struct Outcome {
    uint64_t row_id = 0;
    bool delivered = false;
    absl::Time next_attempt = absl::InfinitePast();  // when not delivered
  };
  absl::Status RecordOutcomes(const std::vector<Outcome>& outcomes);
  absl::Status SetConsecutiveFailures(const std::string& subscription_id,
                                      int failures);
  // Drops rows older than max_age, and beyond max_rows per subscription (oldest
  // first); max_age InfiniteDuration / max_rows 0: no limit. By age, each
  // subscription's rows go in enqueue order, up to the first younger one (a
  // row enqueued after a step back of the clock waits for those before it).
  // Returns (subscription_id, dropped) pairs for counting and logging.
  absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> ApplyRetention(
      absl::Time now, absl::Duration max_age, uint64_t max_rows);
  // One entry per subscription, also those with nothing undelivered (depth 0).
  std::vector<OutboxStats> Stats() const;
  uint64_t OutboxDepth() const;  // undelivered rows in all

 private:
  class Impl;
  explicit EventStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace loophost::host
