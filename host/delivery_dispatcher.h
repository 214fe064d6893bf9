// DeliveryDispatcher: moves outbox rows to subscribers through the transport
// loop's Deliver stream. Up to `subscription_window` deliveries in flight per
// subscription, in row order, each marked after_previous while an earlier one
// of its subscription is out (the transport posts them one at a time, each
// after the previous one's 2xx, and skips the rest after a failure: each
// subscriber gets its events in order), and a bound on all in flight. A 2xx
// result deletes the row (many in one transaction), anything else keeps it for
// a retry after exponential backoff with jitter. Retention (age, rows per
// subscription) is applied periodically, drops counted and logged; optionally
// a subscription is removed after N connection failures in a row. When the
// transport loop restarts (a new generation) or the stream breaks, the stream
// is opened again and what was in flight is sent again (same event id):
// nothing is lost. Owns its threads; Start/Stop from one thread, Notify from
// any.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "host/event_metrics.h"
#include "host/event_store.h"
#include "host/role_plugins.h"
#include "loophost/v1/transport.grpc.pb.h"

namespace loophost::host {

struct DeliveryDispatcherOptions {
  std::string transport_plugin = "http";  // chosen by TRANSPORT_HOST's scheme
  size_t max_in_flight = 1024;            // across all subscriptions
  // Per subscription: the next rows go to the transport while the first is
  // still out, so a busy subscriber does not wait for the host between posts.
  size_t subscription_window = 8;
  absl::Duration delivery_timeout = absl::ZeroDuration();  // 0: transport's
  absl::Duration backoff_initial = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(10);
  absl::Duration retention_age = absl::Hours(24);  // Infinite: no limit
  uint64_t retention_rows = 10000;  // per subscription; 0: no limit
  int remove_after_failures = 0;    // connection failures in a row; 0: never
  // A delivery without a result this long means a stuck transport: the stream
  // is opened again.
  absl::Duration stall_timeout = absl::Seconds(30);
  // While stopping: the longest wait between looks at the results.
  absl::Duration poll_interval = absl::Milliseconds(100);
  // Retention and the outbox gauges, while the outbox holds rows (and once
  // after it emptied).
  absl::Duration housekeeping_interval = absl::Seconds(1);
  absl::Duration drain_timeout = absl::Seconds(2);  // Stop: results in flight
  // Delivered rows leave the outbox in one transaction per batch: when this
  // many are waiting, or this long after the first of them (a failure, the
  // stream closing and Stop record them at once). A host killed meanwhile
  // sends them again, with the same event id.
  size_t outcome_batch_rows = 512;
  absl::Duration outcome_batch_delay = absl::Milliseconds(10);
};

// The wait before attempt `attempts + 1`: initial * 2^attempts, at most max,
// scaled by a factor in [0.8, 1.2) taken from `unit` in [0, 1).
absl::Duration DeliveryBackoff(int attempts, absl::Duration initial,
                               absl::Duration max, double unit);

class DeliveryDispatcher {
 public:
  DeliveryDispatcher(DeliveryDispatcherOptions options, EventStore& store,
                     const RolePlugins& plugins, EventMetrics& metrics);
  ~DeliveryDispatcher();  // Stop()
  DeliveryDispatcher(const DeliveryDispatcher&) = delete;
  DeliveryDispatcher& operator=(const DeliveryDispatcher&) = delete;

  void Start();
  // New rows are in the outbox for these subscriptions: each gets a look now
  // (its head if it has nothing in flight, else the rows after the last one
  // sent) rather than a pass over every subscription.
  void Notify(const std::vector<std::string>& subscription_ids);
  // Sends nothing new, waits up to drain_timeout for the results in flight,
  // then closes the stream (rows without a result stay in the outbox). Joins.
  void Stop();

 private:
  struct Stream;
  struct InFlight {
    std::string subscription_id;
    std::string endpoint;
    int attempts = 0;
    absl::Time sent;
  };

  // A subscription's rows in flight, in the order sent; `failed` once one of
  // them was not delivered: nothing more is sent until all have come back.
  // A lane stays while it has delivered rows not yet deleted from the outbox
  // (`unrecorded`): the subscription counts as busy, so its next rows follow
  // `last_sent` and a delivered row is never taken for its head.
  struct Lane {
    std::deque<uint64_t> rows;
    uint64_t last_sent = 0;
    size_t unrecorded = 0;
    bool failed = false;
  };

  struct AppliedResults {
    bool any = false;     // results came in
    bool failed = false;  // one or more rows wait for a retry now
  };

  void Run();
  // The earliest send time of the deliveries in flight, or a time before it:
  // exact only when it would say one stalled (the bound saves a pass over the
  // in-flight table on every turn). InfiniteFuture with none in flight.
  absl::Time OldestSentLocked(absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OpenStream(const ServingPlugin& serving);
  void CloseStream(const char* why);
  // Sends what is due: after a pass over every subscription (full_scan), or
  // over those in freed_ only (results came back, or new rows were added):
  // heads of subscriptions with nothing in flight, then the rows that follow in
  // the lanes with room (no more rows asked for than the bound on deliveries
  // in flight has room for). True if that bound may have left due rows
  // behind.
  bool SendDue(bool full_scan);
  // Drops `row_id` from its lane; true if the subscription may take rows now
  // (its lane emptied and is gone, or goes on without a failure).
  bool LeaveLane(const std::string& subscription_id, uint64_t row_id,
                 bool delivered, absl::Time now);
  AppliedResults ApplyResults();
  // Writes the delivered rows waiting in pending_outcomes_ and `failures` to
  // the store in one transaction; lanes left with nothing in flight end.
  void RecordOutcomes(std::vector<EventStore::Outcome> failures = {});
  // Metrics, logs and failure counts of one result (the store has it).
  void ApplyResult(const loophost::v1::DeliveryResult& result,
                   const InFlight& delivery, absl::Duration wait);
  void CountConnectionFailure(const std::string& subscription_id,
                              const std::string& endpoint, bool failed);
  // Retention, gauges, failure bookkeeping; returns the outbox depth.
  uint64_t Housekeeping();

  const DeliveryDispatcherOptions options_;
  EventStore& store_;
  const RolePlugins& plugins_;
  EventMetrics& metrics_;
  std::thread thread_;
  std::unique_ptr<ServingChanges::Subscription> serving_watch_;
  std::mt19937_64 rng_;  // dispatcher thread only

  // Dispatcher thread only.
  std::unique_ptr<Stream> stream_;
  absl::Time reopen_at_ = absl::InfinitePast();
  std::weak_ptr<const void> closed_generation_;  // of the last stream
  absl::Duration reopen_delay_;
  std::map<std::string, int> failures_;  // consecutive connection failures
  // Last result a failure: logged once, and the head goes alone (no rows
  // after it) until it is delivered.
  std::set<std::string> failing_;
  std::vector<std::string> freed_;  // results since the last SendDue
  // The last lane asked for rows when the bound left others out ("": none).
  std::string follow_after_;
  std::map<std::string, Lane> lanes_;  // subscriptions with rows in flight
  // Delivered, not yet deleted from the outbox; the first came back at
  // pending_since_.
  std::vector<EventStore::Outcome> pending_outcomes_;
  absl::Time pending_since_ = absl::InfiniteFuture();
  // A row may wait for a retry: rows from before the start, or a failure
  // recorded since the last look found none.
  bool retries_may_wait_ = true;

  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  // Subscriptions given to Notify since the last look.
  std::vector<std::string> notified_ ABSL_GUARDED_BY(mu_);
  bool stream_broken_ ABSL_GUARDED_BY(mu_) = false;
  std::map<uint64_t, InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
  // At or before every in-flight delivery's send time (OldestSentLocked).
  absl::Time oldest_sent_bound_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::vector<loophost::v1::DeliveryResult> results_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loophost::host
