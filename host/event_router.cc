// Implementation of EventRouter (event_router.h): a manager thread that
// follows the serving generations and sends acknowledgements, and one thread
// per source loop that holds its event stream.
#include "host/event_router.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "events/cloud_event_json.h"
#include "events/ptp_events.h"
#include "loophost/v1/event_source.grpc.pb.h"

namespace loophost::host {
namespace {

namespace pb = ::loophost::v1;

// Re-reads a source's publishers at most this often when an event names an
// unknown resource.
constexpr absl::Duration kPublisherRefresh = absl::Seconds(1);

std::string ValuesFingerprint(const pb::CloudEvent& event) {
  std::string out;
  for (const pb::EventValue& v : event.data().values()) {
    absl::StrAppend(&out, v.resource_address(), "\x1f", v.data_type(), "\x1f",
                    v.value_type(), "\x1f", v.value(), "\x1e");
  }
  return out;
}

bool TypeMatches(const std::string& registered, const std::string& type) {
  return registered == type || (registered == events::kClockClassEventType &&
                                type == events::kClockClassEventTypeV1);
}

}  // namespace

// One source loop's stream state. Every field but `name` and `thread` is
// guarded by EventRouter::mu_.
class EventRouter::Source {
 public:
  explicit Source(std::string source_name) : name(std::move(source_name)) {}

  const std::string name;
  std::thread thread;
  std::optional<ServingPlugin> serving;    // the latest the manager saw
  grpc::ClientContext* context = nullptr;  // the stream in progress
  std::weak_ptr<const void> streaming_generation;
  uint64_t stored = 0;  // highest sequence made durable
  uint64_t acked = 0;   // highest acknowledged to acked_generation
  std::weak_ptr<const void> acked_generation;
  std::set<std::pair<std::string, std::string>> rejected_logged;
};

EventRouter::EventRouter(EventRouterOptions options, EventStore& store,
                         const RolePlugins& plugins, EventMetrics& metrics,
                         OnEnqueued on_enqueued)
    : options_(std::move(options)),
      store_(store),
      plugins_(plugins),
      metrics_(metrics),
      on_enqueued_(std::move(on_enqueued)) {}

EventRouter::~EventRouter() { Stop(); }

void EventRouter::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (started_) return;
    started_ = true;
  }
  // Not under mu_: a notification holds the notifier's lock, then takes mu_.
  serving_watch_ = plugins_.WatchServing([this] {
    absl::MutexLock lock(&mu_);
    serving_changed_ = true;
  });
  manager_ = std::thread([this] {
    NameThisThread("lh-router");
    Manage();
  });
}

void EventRouter::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& [name, source] : sources_) {
      if (source->context != nullptr) source->context->TryCancel();
    }
  }
  if (manager_.joinable()) manager_.join();
  serving_watch_.reset();
  // The manager is gone: sources_ no longer changes.
  for (auto& [name, source] : sources_) {
    if (source->thread.joinable()) source->thread.join();
  }
  // Let the sources drop what is durable now (they are still running).
  AckPending();
}

bool EventRouter::Stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void EventRouter::Manage() {
  // Sleeps until something happens: a plugin starts or stops serving, events
  // were stored (to acknowledge), Stop(). Only a failed acknowledgement brings
  // a timer, for its retry.
  bool first = true;
  bool acks_failed = false;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (!first) {
        mu_.AwaitWithTimeout(
            absl::Condition(
                +[](EventRouter* r) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                  return r->stopping_ || r->ack_pending_ || r->serving_changed_;
                },
                this),
            acks_failed ? options_.retry_initial : absl::InfiniteDuration());
      }
      first = false;
      if (stopping_) return;
      ack_pending_ = false;
      serving_changed_ = false;
    }
    std::vector<ServingPlugin> serving =
        plugins_.ServingWithKind(kEventSourceKind);
    {
      absl::MutexLock lock(&mu_);
      std::set<std::string> names;
      for (ServingPlugin& s : serving) {
        names.insert(s.name);
        std::unique_ptr<Source>& source = sources_[s.name];
        if (source == nullptr) {
          source = std::make_unique<Source>(s.name);
          source->serving = s;
          Source* raw = source.get();
          source->thread = std::thread([this, raw] {
            NameThisThread("lh-source");
            RunSource(*raw);
          });
          LogInfo("event source found", {{"source", s.name}});
          continue;
        }
        if (!source->serving || source->serving->generation != s.generation) {
          // A new generation: the old stream is dead or dying; end it now.
          if (source->context != nullptr &&
              !SameGeneration(source->streaming_generation, s.generation)) {
            source->context->TryCancel();
          }
          source->serving = std::move(s);
        }
      }
      for (auto& [name, source] : sources_) {
        if (names.count(name) == 0) source->serving.reset();
      }
    }
    acks_failed = !AckPending();
  }
}

bool EventRouter::AckPending() {
  struct Ack {
    Source* source;
    ServingPlugin serving;
    uint64_t up_to;
  };
  std::vector<Ack> acks;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [name, source] : sources_) {
      if (!source->serving) continue;
      const uint64_t acked =
          SameGeneration(source->acked_generation, source->serving->generation)
              ? source->acked
              : 0;
      if (source->stored > acked) {
        acks.push_back({source.get(), *source->serving, source->stored});
      }
    }
  }
  bool all_acked = true;
  for (const Ack& ack : acks) {
    auto stub = pb::EventSource::NewStub(ack.serving.channel);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(
        absl::Now() + std::min(options_.rpc_deadline, absl::Seconds(2))));
    pb::AckEventsRequest request;
    request.set_up_to_sequence(ack.up_to);
    pb::AckEventsResponse response;
    const grpc::Status status = stub->AckEvents(&context, request, &response);
    if (!status.ok()) {
      LogDebug("AckEvents failed", {{"source", ack.source->name},
                                    {"error", status.error_message()}});
      all_acked = false;
      continue;
    }
    absl::MutexLock lock(&mu_);
    ack.source->acked = ack.up_to;
    ack.source->acked_generation = ack.serving.generation;
  }
  return all_acked;
}

void EventRouter::RunSource(Source& source) {
  absl::Duration delay = options_.retry_initial;
  bool failing = false;
  while (true) {
    ServingPlugin serving;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this, &source]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || source.serving.has_value();
      };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
    }
    // Ask again rather than trust the manager's last look: the generation
    // may have ended since (an in-process channel must not be used after its
    // server stopped).
    std::optional<ServingPlugin> now = plugins_.ServingNamed(source.name);
    if (!now) {
      // Not serving: wait for the manager to see it serve again.
      absl::MutexLock lock(&mu_);
      source.serving.reset();
      continue;
    }
    serving = *std::move(now);
    const absl::Time started = absl::Now();
    absl::Status status = StreamOnce(source, serving);
    if (Stopping()) return;
    bool new_generation = false;
    {
      absl::MutexLock lock(&mu_);
      new_generation =
          source.serving && source.serving->generation != serving.generation;
    }
    if (new_generation) {
      delay = options_.retry_initial;
      continue;
    }
    if (absl::Now() - started > 2 * options_.retry_max) {
      delay = options_.retry_initial;  // it ran for a while: a fresh failure
    }
    const LogFields fields = {{"source", source.name},
                              {"error", std::string(status.message())},
                              {"retry_in", absl::FormatDuration(delay)}};
    if (failing) {
      LogDebug("event stream ended", fields);
    } else {
      LogWarn("event stream ended", fields);
    }
    failing = true;
    {
      absl::MutexLock lock(&mu_);
      auto changed = [&source, &serving,
                      this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return stopping_ || (source.serving &&
                             source.serving->generation != serving.generation);
      };
      mu_.AwaitWithTimeout(absl::Condition(&changed), delay);
      if (stopping_) return;
    }
    delay = std::min(delay * 2, options_.retry_max);
  }
}

absl::Status EventRouter::StreamOnce(Source& source,
                                     const ServingPlugin& serving) {
  auto stub = pb::EventSource::NewStub(serving.channel);
  PublisherTypes types;
  // `cancellable`: Stop() may cancel the call (the first one, which waits for
  // the loop to be ready).
  auto refresh_publishers = [&](bool cancellable) -> absl::Status {
    grpc::ClientContext context;
    context.set_deadline(
        absl::ToChronoTime(absl::Now() + options_.rpc_deadline));
    context.set_wait_for_ready(true);
    if (cancellable) {
      absl::MutexLock lock(&mu_);
      if (stopping_) return absl::CancelledError("stopping");
      source.context = &context;
      source.streaming_generation = serving.generation;
    }
    pb::ListPublishersResponse response;
    const grpc::Status listed =
        stub->ListPublishers(&context, pb::ListPublishersRequest(), &response);
    if (cancellable) {
      absl::MutexLock lock(&mu_);
      source.context = nullptr;
    }
    LH_RETURN_IF_ERROR(ToAbslStatus(listed, "ListPublishers"));
    types.clear();
    for (const pb::Publisher& p : response.publishers()) {
      types[p.resource_address()] = p.event_type();
      PublisherRecord record;
      record.resource_address = p.resource_address();
      record.event_type = p.event_type();
      record.source_plugin = source.name;
      record.endpoint_uri = options_.api_base;
      LH_RETURN_IF_ERROR(store_.UpsertPublisher(std::move(record)).status());
    }
    std::vector<PublisherRecord> all = store_.ListPublishers();
    std::set<std::string> addresses;
    for (const PublisherRecord& p : all) addresses.insert(p.resource_address);
    metrics_.SetReceivers(addresses);
    metrics_.SetActivePublishers(all.size());
    return absl::OkStatus();
  };
  LH_RETURN_IF_ERROR(refresh_publishers(/*cancellable=*/true));
  absl::Time refreshed = absl::Now();

  const uint64_t after = store_.SourceCursor(source.name);
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ ||
        (source.serving && source.serving->generation != serving.generation)) {
      return absl::CancelledError("stopping or a new generation");
    }
    source.context = &context;
    source.streaming_generation = serving.generation;
    // Acknowledgements follow what this stream delivers, never the cursor
    // alone: a source that lost its numbering would drop new events.
  }
  LogInfo("event stream open",
          {{"source", source.name}, {"after", absl::StrCat(after)}});
  pb::StreamEventsRequest request;
  request.set_after_sequence(after);
  auto reader = stub->StreamEvents(&context, request);
  pb::SequencedEvent event;
  bool first = true;
  absl::Status route_status;
  while (reader->Read(&event)) {
    if (first && after > 0 && event.sequence() <= after) {
      // The loop answered a resume with old numbers: it lost its state.
      // Start over from its numbering rather than ignoring it forever.
      LogWarn("event source restarted its sequence numbers",
              {{"source", source.name},
               {"cursor", absl::StrCat(after)},
               {"first", absl::StrCat(event.sequence())}});
      route_status = store_.SetSourceCursor(source.name, event.sequence() - 1);
      if (!route_status.ok()) break;
      absl::MutexLock lock(&mu_);
      source.stored = event.sequence() - 1;
      source.acked = 0;
    }
    first = false;
    if (types.count(event.event().source()) == 0 &&
        absl::Now() - refreshed > kPublisherRefresh) {
      refreshed = absl::Now();
      if (absl::Status s = refresh_publishers(/*cancellable=*/false); !s.ok()) {
        route_status = s;
        break;
      }
    }
    route_status =
        Route(source.name, &types, event.sequence(), event.event()).status();
    if (!route_status.ok()) break;
    absl::MutexLock lock(&mu_);
    source.stored = std::max(source.stored, event.sequence());
    ack_pending_ = true;
  }
  if (!route_status.ok()) {
    LogError("event not stored; the stream restarts and the source resends it",
             {{"source", source.name},
              {"sequence", absl::StrCat(event.sequence())},
              {"error", std::string(route_status.message())}});
    context.TryCancel();
    while (reader->Read(&event)) {
    }
  }
  const grpc::Status finished = reader->Finish();
  {
    absl::MutexLock lock(&mu_);
    source.context = nullptr;
  }
  LH_RETURN_IF_ERROR(route_status);
  if (finished.ok()) return absl::AbortedError("the source ended the stream");
  return ToAbslStatus(finished, "StreamEvents");
}

bool EventRouter::Duplicate(const std::string& source_name,
                            const pb::CloudEvent& event) {
  if (options_.dedup_window <= absl::ZeroDuration()) return false;
  absl::MutexLock lock(&dedup_mu_);
  auto it = last_.find({event.source(), event.type()});
  if (it == last_.end()) return false;
  const LastEvent& last = it->second;
  // The same event again is a replay, for the cursor to sort out.
  if (last.id == event.id()) return false;
  if (last.values != ValuesFingerprint(event)) return false;
  const absl::Time t = event.time_unix_nanos() != 0
                           ? absl::FromUnixNanos(event.time_unix_nanos())
                           : absl::Now();
  const absl::Duration gap = t > last.time ? t - last.time : last.time - t;
  if (gap > options_.dedup_window) return false;
  metrics_.EventDeduplicated(source_name, event.type());
  return true;
}

void EventRouter::RememberForDedup(const pb::CloudEvent& event) {
  if (options_.dedup_window <= absl::ZeroDuration()) return;
  const absl::Time t = event.time_unix_nanos() != 0
                           ? absl::FromUnixNanos(event.time_unix_nanos())
                           : absl::Now();
  absl::MutexLock lock(&dedup_mu_);
  last_[{event.source(), event.type()}] =
      LastEvent{event.id(), ValuesFingerprint(event), t};
}

absl::StatusOr<int> EventRouter::Route(const std::string& source_name,
                                       const PublisherTypes* types,
                                       uint64_t sequence,
                                       const pb::CloudEvent& event) {
  const std::string& type = event.type();
  const std::string& address = event.source();
  if (types != nullptr) {
    auto it = types->find(address);
    if (it == types->end() || !TypeMatches(it->second, type)) {
      metrics_.EventAcked(type, false);
      metrics_.EventReceived(address, false);
      LogWarn(
          "event rejected: not a type its source registered for the address",
          {{"source", source_name},
           {"address", address},
           {"type", type},
           {"registered", it == types->end() ? "" : it->second}});
      // Still moves the cursor: the source must not send it again.
      LH_RETURN_IF_ERROR(
          store_.EnqueueEvent(source_name, sequence, event.id(), {}).status());
      return 0;
    }
  }
  if (Duplicate(source_name, event)) {
    LH_RETURN_IF_ERROR(
        store_.EnqueueEvent(source_name, sequence, event.id(), {}).status());
    return 0;
  }
  std::vector<EventStore::Delivery> deliveries;
  std::string v1_body, v2_body;
  for (const SubscriptionRecord& sub : store_.ListSubscriptions()) {
    if (sub.resource_address != address) continue;
    std::string* body = sub.api_version == 1 ? &v1_body : &v2_body;
    if (body->empty()) {
      *body = sub.api_version == 1 ? events::EncodeV1Event(event)
                                   : events::EncodeV2Event(event);
    }
    deliveries.push_back({sub.id, *body});
  }
  LH_ASSIGN_OR_RETURN(int written, store_.EnqueueEvent(source_name, sequence,
                                                       event.id(), deliveries));
  RememberForDedup(event);
  metrics_.EventAcked(type, true);
  metrics_.EventReceived(address, true);
  if (written > 0 && on_enqueued_) {
    std::vector<std::string> subscription_ids;
    subscription_ids.reserve(deliveries.size());
    for (const EventStore::Delivery& d : deliveries) {
      subscription_ids.push_back(d.subscription_id);
    }
    on_enqueued_(subscription_ids);
  }
  return written;
}

absl::StatusOr<int> EventRouter::Publish(const pb::CloudEvent& event) {
  absl::MutexLock lock(&publish_mu_);
  const uint64_t sequence = store_.SourceCursor(kApiSource) + 1;
  return Route(kApiSource, nullptr, sequence, event);
}

}  // namespace loophost::host
