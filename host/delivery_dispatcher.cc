// Implementation of DeliveryDispatcher (delivery_dispatcher.h): one dispatcher
// thread owns the stream, the store updates and the in-flight table's writes
// of results; one reader thread per stream only queues results.
#include "host/delivery_dispatcher.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/thread_name.h"

namespace loophost::host {

namespace pb = ::loophost::v1;

namespace {
// Bodies per Deliver message: well under gRPC's 4 MB message limit (a body
// is at most the REST API's 64 KB plus the event's envelope).
constexpr size_t kMaxBatchBytes = size_t{1} << 20;
}  // namespace

absl::Duration DeliveryBackoff(int attempts, absl::Duration initial,
                               absl::Duration max, double unit) {
  absl::Duration base = initial;
  for (int i = 0; i < attempts && base < max; ++i) base *= 2;
  base = std::min(base, max);
  return base * (0.8 + 0.4 * std::clamp(unit, 0.0, 1.0));
}

struct DeliveryDispatcher::Stream {
  ServingPlugin serving;
  std::unique_ptr<pb::Transport::Stub> stub;
  grpc::ClientContext context;
  std::unique_ptr<
      grpc::ClientReaderWriter<pb::DeliveryBatch, pb::DeliveryResultBatch>>
      rw;
  std::thread reader;
  absl::Time opened;
};

DeliveryDispatcher::DeliveryDispatcher(DeliveryDispatcherOptions options,
                                       EventStore& store,
                                       const RolePlugins& plugins,
                                       EventMetrics& metrics)
    : options_(std::move(options)),
      store_(store),
      plugins_(plugins),
      metrics_(metrics),
      rng_(std::random_device{}()),
      reopen_delay_(options_.backoff_initial) {}

DeliveryDispatcher::~DeliveryDispatcher() { Stop(); }

void DeliveryDispatcher::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (started_) return;
    started_ = true;
  }
  // Not under mu_: a notification holds the notifier's lock, then takes mu_.
  serving_watch_ = plugins_.WatchServing([this] {
    absl::MutexLock lock(&mu_);
    wake_ = true;
  });
  thread_ = std::thread([this] {
    NameThisThread("lh-dispatcher");
    Run();
  });
}

void DeliveryDispatcher::Notify(
    const std::vector<std::string>& subscription_ids) {
  absl::MutexLock lock(&mu_);
  notified_.insert(notified_.end(), subscription_ids.begin(),
                   subscription_ids.end());
  wake_ = true;
}

void DeliveryDispatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (draining_) return;
    draining_ = true;
    wake_ = true;
  }
  if (thread_.joinable()) thread_.join();
  serving_watch_.reset();
}

void DeliveryDispatcher::Run() {
  // The dispatcher sleeps until something happens (new rows, results, a
  // plugin serving or not, Stop) or a time it knows of comes: a retry due,
  // the stall limit of a delivery in flight, a stream to reopen, delivered
  // rows to record, the next housekeeping while the outbox holds rows. Idle,
  // it has no timer at all.
  absl::Time next_housekeeping = absl::InfinitePast();
  absl::Time next_retry = absl::InfinitePast();  // first pass: a full scan
  absl::Time drain_deadline = absl::InfiniteFuture();
  absl::Time wake_at = absl::InfinitePast();
  bool capacity_limited = false;  // the last scan may have left rows due
  bool outbox_empty = false;      // at the last housekeeping
  bool activity = true;           // rows or results since the housekeeping
  while (true) {
    bool draining = false;
    std::vector<std::string> notified;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return wake_ || stream_broken_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), wake_at - absl::Now());
      wake_ = false;
      notified.swap(notified_);
      draining = draining_;
      if (draining && drain_deadline == absl::InfiniteFuture()) {
        drain_deadline = absl::Now() + options_.drain_timeout;
      }
    }
    const AppliedResults applied = ApplyResults();
    if (!pending_outcomes_.empty() &&
        absl::Now() >= pending_since_ + options_.outcome_batch_delay) {
      RecordOutcomes();
    }
    if (draining) {
      absl::MutexLock lock(&mu_);
      if (in_flight_.empty() || stream_ == nullptr || stream_broken_ ||
          absl::Now() >= drain_deadline) {
        break;
      }
      wake_at = std::min(absl::Now() + options_.poll_interval, drain_deadline);
      continue;
    }
    activity = activity || !notified.empty() || applied.any;
    // Subscriptions with new rows get the look of those whose results came.
    freed_.insert(freed_.end(), std::make_move_iterator(notified.begin()),
                  std::make_move_iterator(notified.end()));

    const absl::Time now = absl::Now();
    std::optional<ServingPlugin> serving =
        plugins_.ServingNamed(options_.transport_plugin);
    // The earliest send time in flight, for the stall check and the wakeup
    // below: what SendDue adds is sent at `now` or later (after a stream was
    // closed and opened again, waking early only costs a look).
    absl::Time oldest = absl::InfiniteFuture();
    if (stream_ != nullptr) {
      bool broken;
      {
        absl::MutexLock lock(&mu_);
        broken = stream_broken_;
        oldest = OldestSentLocked(now);
      }
      if (broken) {
        CloseStream("the stream ended");
      } else if (!serving) {
        CloseStream("the transport loop stopped serving");
      } else if (serving->generation != stream_->serving.generation) {
        CloseStream("the transport loop has a new generation");
      } else if (now - oldest >= options_.stall_timeout) {
        CloseStream("a delivery got no result within the stall timeout");
      }
    }
    // A new generation gets a stream at once; the same one after a delay
    // (its stream just ended: it may be going away, and an in-process
    // channel must not be used after its server stopped).
    // What the bound on deliveries in flight left behind is looked for again
    // once an eighth of it is free, not after every result: a pass costs a
    // lookup per subscription.
    size_t free_slots = 0;
    {
      absl::MutexLock lock(&mu_);
      free_slots = options_.max_in_flight -
                   std::min(options_.max_in_flight, in_flight_.size());
    }
    bool full_scan =
        now >= next_retry ||
        (capacity_limited && applied.any &&
         free_slots >= std::max<size_t>(1, options_.max_in_flight / 8));
    if (stream_ == nullptr && serving &&
        (now >= reopen_at_ ||
         !SameGeneration(closed_generation_, serving->generation))) {
      OpenStream(*serving);
      full_scan = true;
    }
    if (stream_ != nullptr) {
      // A full pass over the subscriptions when a retry came due, a stream
      // opened or the bound left rows behind; else only the subscriptions
      // that just got free or got new rows.
      capacity_limited = SendDue(full_scan);
      // The look for the next retry is a pass over the subscriptions: only
      // while some row may wait for one (after a failure, or from before).
      if ((full_scan || applied.failed) && retries_may_wait_) {
        next_retry = store_.NextRetryAfter(now);
        retries_may_wait_ = next_retry != absl::InfiniteFuture();
      }
    } else {
      freed_.clear();
    }
    if (now >= next_housekeeping && (activity || !outbox_empty)) {
      outbox_empty = Housekeeping() == 0;
      activity = false;
      next_housekeeping = now + options_.housekeeping_interval;
    }

    // When to look again without being woken.
    wake_at = absl::InfiniteFuture();
    if (stream_ != nullptr) {
      wake_at = next_retry;
      absl::MutexLock lock(&mu_);
      if (!in_flight_.empty()) {
        wake_at =
            std::min(wake_at, std::min(oldest, now) + options_.stall_timeout);
      }
    } else if (serving) {
      wake_at = reopen_at_;
    }
    if (activity || !outbox_empty) {
      wake_at = std::min(wake_at, next_housekeeping);
    }
    if (!pending_outcomes_.empty()) {
      wake_at =
          std::min(wake_at, pending_since_ + options_.outcome_batch_delay);
    }
  }
  if (stream_ != nullptr) CloseStream("stopping");
  ApplyResults();
  RecordOutcomes();
}

absl::Time DeliveryDispatcher::OldestSentLocked(absl::Time now) {
  if (in_flight_.empty()) {
    oldest_sent_bound_ = absl::InfiniteFuture();
  } else if (now - oldest_sent_bound_ >= options_.stall_timeout) {
    // Send times only move later (a lane's next row restarts its clock), so
    // the bound stays at or before them until looked at again here.
    oldest_sent_bound_ = absl::InfiniteFuture();
    for (const auto& [id, d] : in_flight_) {
      oldest_sent_bound_ = std::min(oldest_sent_bound_, d.sent);
    }
  }
  return oldest_sent_bound_;
}

void DeliveryDispatcher::OpenStream(const ServingPlugin& serving) {
  auto stream = std::make_unique<Stream>();
  stream->serving = serving;
  stream->opened = absl::Now();
  stream->stub = pb::Transport::NewStub(serving.channel);
  stream->rw = stream->stub->Deliver(&stream->context);
  {
    absl::MutexLock lock(&mu_);
    stream_broken_ = false;
  }
  Stream* raw = stream.get();
  stream->reader = std::thread([this, raw] {
    NameThisThread("lh-results");
    pb::DeliveryResultBatch batch;
    while (raw->rw->Read(&batch)) {
      absl::MutexLock lock(&mu_);
      for (pb::DeliveryResult& result : *batch.mutable_results()) {
        results_.push_back(std::move(result));
      }
      wake_ = true;
    }
    absl::MutexLock lock(&mu_);
    stream_broken_ = true;
  });
  stream_ = std::move(stream);
  LogDebug("delivery stream open", {{"transport", serving.name}});
}

void DeliveryDispatcher::CloseStream(const char* why) {
  stream_->context.TryCancel();
  stream_->reader.join();
  const grpc::Status status = stream_->rw->Finish();
  const bool short_lived = absl::Now() - stream_->opened < absl::Seconds(1);
  closed_generation_ = stream_->serving.generation;
  stream_.reset();
  // Results that arrived are real outcomes; what has none is sent again.
  ApplyResults();
  RecordOutcomes();
  size_t resend = 0;
  {
    absl::MutexLock lock(&mu_);
    resend = in_flight_.size();
    in_flight_.clear();
    lanes_.clear();
    stream_broken_ = false;
  }
  const LogFields fields = {
      {"why", why},
      {"status", status.ok() ? "OK" : status.error_message()},
      {"resend", absl::StrCat(resend)}};
  if (std::string(why) == "stopping") {
    LogDebug("delivery stream closed", fields);
  } else {
    LogInfo("delivery stream closed", fields);
  }
  // On the same generation, a stream that keeps failing at once is opened
  // again with backoff.
  if (!short_lived) reopen_delay_ = options_.backoff_initial;
  reopen_at_ = absl::Now() + reopen_delay_;
  if (short_lived) {
    reopen_delay_ = std::min(reopen_delay_ * 2, absl::Seconds(5));
  }
}

bool DeliveryDispatcher::SendDue(bool full_scan) {
  size_t capacity = 0;
  {
    absl::MutexLock lock(&mu_);
    if (in_flight_.size() >= options_.max_in_flight) return true;
    capacity = options_.max_in_flight - in_flight_.size();
  }
  const absl::Time now = absl::Now();
  // Heads: the oldest row of each subscription with nothing in flight, if
  // due. Lanes with rows in flight may take the rows that follow.
  std::vector<OutboxRow> heads;
  std::vector<std::string> lanes_with_room;
  if (full_scan) {
    std::vector<std::string> busy;  // sorted, as lanes_ is
    busy.reserve(lanes_.size());
    for (const auto& [id, lane] : lanes_) busy.push_back(id);
    heads = store_.DueDeliveries(now, busy, capacity);
    lanes_with_room = std::move(busy);
  } else if (!freed_.empty()) {
    std::sort(freed_.begin(), freed_.end());
    freed_.erase(std::unique(freed_.begin(), freed_.end()), freed_.end());
    std::vector<std::string> idle;
    for (std::string& id : freed_) {
      (lanes_.count(id) > 0 ? lanes_with_room : idle).push_back(std::move(id));
    }
    // Only the subscriptions whose delivery just ended can have a new head.
    heads = store_.DueDeliveriesFor(now, idle);
    if (heads.size() > capacity) heads.resize(capacity);
  }
  freed_.clear();
  for (const OutboxRow& row : heads) {
    lanes_with_room.push_back(row.subscription_id);
  }

  const uint32_t timeout_ms = static_cast<uint32_t>(
      absl::ToInt64Milliseconds(options_.delivery_timeout));
  // The rows go in batches of at most kMaxBatchBytes of bodies, each in the
  // in-flight table before its write (a result may come back first).
  pb::DeliveryBatch batch;
  size_t batch_bytes = 0;
  bool broken = false;
  auto flush = [&](bool last) {
    if (batch.deliveries_size() == 0 || broken) return;
    grpc::WriteOptions options;
    if (!last) options.set_buffer_hint();  // the next batch follows at once
    if (stream_->rw->Write(batch, options)) {
      batch.Clear();
      batch_bytes = 0;
      return;
    }
    absl::MutexLock lock(&mu_);
    for (const pb::Delivery& d : batch.deliveries()) {
      in_flight_.erase(d.delivery_id());
    }
    stream_broken_ = true;
    broken = true;
  };
  // A row goes after the previous one's 2xx when its subscription has rows
  // in flight; with none (a head, or a lane whose rows all came back
  // delivered) there is nothing to wait for.
  auto add = [&](OutboxRow& row) {
    if (batch_bytes + row.body.size() > kMaxBatchBytes) flush(false);
    if (broken) return;
    batch_bytes += row.body.size();
    Lane& lane = lanes_[row.subscription_id];
    const bool after_previous = !lane.rows.empty();
    lane.rows.push_back(row.id);
    lane.last_sent = row.id;
    pb::Delivery& delivery = *batch.add_deliveries();
    delivery.set_delivery_id(row.id);
    delivery.set_subscription_id(row.subscription_id);
    delivery.set_endpoint(row.endpoint);
    delivery.set_body(std::move(row.body));
    delivery.set_content_type("application/json");
    delivery.set_timeout_ms(timeout_ms);
    delivery.set_after_previous(after_previous);
    absl::MutexLock lock(&mu_);
    in_flight_[row.id] = InFlight{std::move(row.subscription_id),
                                  std::move(row.endpoint), row.attempts, now};
    oldest_sent_bound_ = std::min(oldest_sent_bound_, now);
    --capacity;
  };
  for (OutboxRow& row : heads) add(row);
  // Then the rows that follow, for the lanes with room: each subscription
  // has its head out before any gets a second row. A failing subscriber gets
  // its head alone until it takes it again. One read of the store for all of
  // them, asking for no more rows than the bound has room for; when that
  // leaves lanes out, the next pass starts after the last lane asked.
  std::sort(lanes_with_room.begin(), lanes_with_room.end());
  lanes_with_room.erase(
      std::unique(lanes_with_room.begin(), lanes_with_room.end()),
      lanes_with_room.end());
  std::rotate(lanes_with_room.begin(),
              std::upper_bound(lanes_with_room.begin(), lanes_with_room.end(),
                               follow_after_),
              lanes_with_room.end());
  bool lanes_left_out = false;
  std::string last_asked;
  size_t budget = capacity;
  std::vector<EventStore::RowsAfterQuery> follow;
  for (std::string& id : lanes_with_room) {
    auto it = lanes_.find(id);
    if (it == lanes_.end() || it->second.failed || failing_.count(id) > 0 ||
        it->second.rows.size() >= options_.subscription_window) {
      continue;
    }
    if (budget == 0) {
      lanes_left_out = true;
      break;
    }
    const size_t want =
        std::min(budget, options_.subscription_window - it->second.rows.size());
    budget -= want;
    last_asked = id;
    follow.push_back({std::move(id), it->second.last_sent, want});
  }
  follow_after_ = lanes_left_out ? std::move(last_asked) : std::string();
  for (OutboxRow& row : store_.RowsAfter(follow)) {
    if (capacity == 0 || broken) break;
    add(row);
  }
  flush(true);
  return capacity == 0 || lanes_left_out;
}

bool DeliveryDispatcher::LeaveLane(const std::string& subscription_id,
                                   uint64_t row_id, bool delivered,
                                   absl::Time now) {
  auto it = lanes_.find(subscription_id);
  if (it == lanes_.end()) return true;
  Lane& lane = it->second;
  lane.rows.erase(std::remove(lane.rows.begin(), lane.rows.end(), row_id),
                  lane.rows.end());
  lane.failed = lane.failed || !delivered;
  if (delivered) ++lane.unrecorded;
  if (lane.rows.empty()) {
    if (lane.unrecorded == 0) {
      lanes_.erase(it);
      return true;
    }
    return !lane.failed;
  }
  // The lane's next row is posted from now on: its stall clock starts now.
  absl::MutexLock lock(&mu_);
  auto next = in_flight_.find(lane.rows.front());
  if (next != in_flight_.end()) next->second.sent = now;
  return !lane.failed;
}

DeliveryDispatcher::AppliedResults DeliveryDispatcher::ApplyResults() {
  std::vector<pb::DeliveryResult> results;
  {
    absl::MutexLock lock(&mu_);
    results.swap(results_);
  }
  AppliedResults applied;
  if (results.empty()) return applied;
  applied.any = true;
  std::vector<std::pair<const pb::DeliveryResult*, InFlight>> known;
  known.reserve(results.size());
  {
    absl::MutexLock lock(&mu_);
    for (const pb::DeliveryResult& result : results) {
      auto it = in_flight_.find(result.delivery_id());
      if (it == in_flight_.end()) continue;  // not ours (any more)
      known.emplace_back(&result, it->second);
    }
  }
  const absl::Time now = absl::Now();
  std::vector<absl::Duration> waits(known.size());
  std::vector<EventStore::Outcome> failures;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (size_t i = 0; i < known.size(); ++i) {
    const auto& [result, delivery] = known[i];
    if (result->skipped()) continue;  // not attempted: the row stays as it is
    EventStore::Outcome outcome;
    outcome.row_id = result->delivery_id();
    outcome.delivered = result->delivered();
    if (outcome.delivered) {
      if (pending_outcomes_.empty()) pending_since_ = now;
      pending_outcomes_.push_back(outcome);
      continue;
    }
    applied.failed = true;
    waits[i] = DeliveryBackoff(delivery.attempts, options_.backoff_initial,
                               options_.backoff_max, unit(rng_));
    outcome.next_attempt = now + waits[i];
    failures.push_back(outcome);
  }
  for (size_t i = 0; i < known.size(); ++i) {
    if (!known[i].first->skipped()) {
      ApplyResult(*known[i].first, known[i].second, waits[i]);
    }
  }
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [result, delivery] : known) {
      in_flight_.erase(result->delivery_id());
    }
  }
  // A lane that ended gets a head look; one still going (or waiting for its
  // delivered rows to be recorded) may take more rows, unless it failed.
  for (const auto& [result, delivery] : known) {
    const std::string& id = delivery.subscription_id;
    if (LeaveLane(id, result->delivery_id(), result->delivered(), now)) {
      freed_.push_back(id);
    }
  }
  // A failure is recorded at once (with the deliveries before it): its retry
  // time must be in the store before the subscription's head is looked for.
  if (!failures.empty() ||
      pending_outcomes_.size() >= options_.outcome_batch_rows) {
    RecordOutcomes(std::move(failures));
  }
  return applied;
}

void DeliveryDispatcher::RecordOutcomes(
    std::vector<EventStore::Outcome> failures) {
  std::vector<EventStore::Outcome> outcomes;
  outcomes.swap(pending_outcomes_);
  pending_since_ = absl::InfiniteFuture();
  outcomes.insert(outcomes.end(), failures.begin(), failures.end());
  if (outcomes.empty()) return;
  if (!failures.empty()) retries_may_wait_ = true;
  if (absl::Status st = store_.RecordOutcomes(outcomes); !st.ok()) {
    LogError("outbox update failed; the deliveries will repeat",
             {{"error", std::string(st.message())}});
  }
  // Until now a subscription with delivered rows stayed busy: its head was
  // never looked for while the delivered row was still in the outbox.
  for (auto it = lanes_.begin(); it != lanes_.end();) {
    it->second.unrecorded = 0;
    if (it->second.rows.empty()) {
      freed_.push_back(it->first);
      it = lanes_.erase(it);
    } else {
      ++it;
    }
  }
}

void DeliveryDispatcher::ApplyResult(const pb::DeliveryResult& result,
                                     const InFlight& delivery,
                                     absl::Duration wait) {
  const std::string& sub = delivery.subscription_id;
  metrics_.DeliveryResult(result.delivered());
  if (result.delivered()) {
    CountConnectionFailure(sub, delivery.endpoint, false);
    if (failing_.erase(sub) > 0) {
      LogInfo("subscriber reachable again",
              {{"subscription", sub}, {"endpoint", delivery.endpoint}});
    }
    return;
  }
  const LogFields fields = {{"subscription", sub},
                            {"endpoint", delivery.endpoint},
                            {"http_status", absl::StrCat(result.http_status())},
                            {"error", result.error()},
                            {"attempt", absl::StrCat(delivery.attempts + 1)},
                            {"retry_in", absl::FormatDuration(wait)}};
  if (failing_.insert(sub).second) {
    LogWarn("delivery failed; kept for retry", fields);
  } else {
    LogDebug("delivery failed; kept for retry", fields);
  }
  CountConnectionFailure(sub, delivery.endpoint, result.http_status() == 0);
}

void DeliveryDispatcher::CountConnectionFailure(
    const std::string& subscription_id, const std::string& endpoint,
    bool failed) {
  auto it = failures_.find(subscription_id);
  if (it == failures_.end()) {
    std::optional<SubscriptionRecord> record =
        store_.FindSubscription(subscription_id);
    if (!record) return;  // deleted meanwhile
    it = failures_.emplace(subscription_id, record->consecutive_failures).first;
  }
  const int count = failed ? it->second + 1 : 0;
  if (count == it->second) return;
  it->second = count;
  if (!store_.SetConsecutiveFailures(subscription_id, count).ok()) {
    failures_.erase(it);  // deleted meanwhile
    return;
  }
  if (failed && options_.remove_after_failures > 0 &&
      count >= options_.remove_after_failures) {
    if (store_.DeleteSubscription(subscription_id).ok()) {
      metrics_.SubscriptionRemoved("connection_failures");
      LogWarn("subscription removed after connection failures in a row",
              {{"subscription", subscription_id},
               {"endpoint", endpoint},
               {"failures", absl::StrCat(count)}});
    }
    failures_.erase(subscription_id);
    failing_.erase(subscription_id);
  }
}

uint64_t DeliveryDispatcher::Housekeeping() {
  RecordOutcomes();  // the depth and ages below leave out what was delivered
  const absl::Time now = absl::Now();
  auto dropped = store_.ApplyRetention(now, options_.retention_age,
                                       options_.retention_rows);
  if (!dropped.ok()) {
    LogError("outbox retention failed",
             {{"error", std::string(dropped.status().message())}});
  } else {
    for (const auto& [subscription, rows] : *dropped) {
      metrics_.OutboxDropped(subscription, rows);
      LogWarn("retention dropped undelivered events",
              {{"subscription", subscription},
               {"events", absl::StrCat(rows)},
               {"max_age", absl::FormatDuration(options_.retention_age)},
               {"max_rows", absl::StrCat(options_.retention_rows)}});
    }
  }
  const std::vector<OutboxStats> stats = store_.Stats();
  uint64_t depth = 0;
  for (const OutboxStats& s : stats) depth += s.depth;
  metrics_.SetOutboxStats(stats, now);
  std::vector<SubscriptionRecord> subscriptions = store_.ListSubscriptions();
  std::set<std::string> ids;
  for (const SubscriptionRecord& s : subscriptions) ids.insert(s.id);
  metrics_.SetActiveSubscriptions(subscriptions.size());
  // Forget the failure counts of deleted subscriptions.
  for (auto it = failures_.begin(); it != failures_.end();) {
    it = ids.count(it->first) == 0 ? failures_.erase(it) : std::next(it);
  }
  for (auto it = failing_.begin(); it != failing_.end();) {
    it = ids.count(*it) == 0 ? failing_.erase(it) : std::next(it);
  }
  return depth;
}

}  // namespace loophost::host
