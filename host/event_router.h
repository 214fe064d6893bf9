// EventRouter: takes events from every serving event-source loop and makes
// them durable. Per source it runs one stream: ListPublishers (stored as
// publishers), then StreamEvents after the source's stored cursor; each event
// is checked against the publishers' types, coalesced with an identical
// predecessor inside the dedup window, encoded per subscription (v1 or v2
// shape) and written to the outbox with the cursor in one transaction, and
// only then acknowledged to the source. A stream that ends (the loop restarted,
// the host restarted, a new generation) resumes after the stored cursor, so
// nothing is lost or routed twice. Owns its threads; thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "host/event_metrics.h"
#include "host/event_store.h"
#include "host/role_plugins.h"
#include "loophost/v1/event.pb.h"

namespace loophost::host {

struct EventRouterOptions {
  // Identical events (type, source, values) inside this window are coalesced
  // into the first; zero turns dedup off.
  absl::Duration dedup_window = absl::Seconds(1);
  absl::Duration rpc_deadline = absl::Seconds(5);  // ListPublishers, AckEvents
  // Between attempts while a source's stream keeps failing.
  absl::Duration retry_initial = absl::Milliseconds(100);
  absl::Duration retry_max = absl::Seconds(5);
  // Stored as the publishers' endpoint_uri (v1 shape): the API's external base.
  std::string api_base;
};

// The pseudo source of events posted to create/event (not a valid plugin name).
inline constexpr char kApiSource[] = "@rest-api";

class EventRouter {
 public:
  // `on_enqueued` runs after outbox rows were written, with the
  // subscriptions they are for (wakes the dispatcher). Every reference must
  // outlive the router.
  using OnEnqueued =
      std::function<void(const std::vector<std::string>& subscription_ids)>;
  EventRouter(EventRouterOptions options, EventStore& store,
              const RolePlugins& plugins, EventMetrics& metrics,
              OnEnqueued on_enqueued);
  ~EventRouter();  // Stop()
  EventRouter(const EventRouter&) = delete;
  EventRouter& operator=(const EventRouter&) = delete;

  void Start();
  // Stops intake: cancels every stream, lets the event in hand reach the
  // outbox, joins the threads. Idempotent.
  void Stop();

  // An event posted to create/event for a known publisher: routed like a
  // source's (dedup, outbox). Returns the number of outbox rows written.
  absl::StatusOr<int> Publish(const loophost::v1::CloudEvent& event);

 private:
  class Source;
  // Resource address -> event type, of one source's publishers.
  using PublisherTypes = std::map<std::string, std::string>;

  void Manage();
  void RunSource(Source& source);
  absl::Status StreamOnce(Source& source, const ServingPlugin& serving);
  // Routes one event; `types` null skips the publisher check.
  absl::StatusOr<int> Route(const std::string& source_name,
                            const PublisherTypes* types, uint64_t sequence,
                            const loophost::v1::CloudEvent& event);
  bool Duplicate(const std::string& source_name,
                 const loophost::v1::CloudEvent& event);
  void RememberForDedup(const loophost::v1::CloudEvent& event);
  // Acknowledges what each source's stream stored; false if a call failed.
  bool AckPending();
  bool Stopping() const;

  const EventRouterOptions options_;
  EventStore& store_;
  const RolePlugins& plugins_;
  EventMetrics& metrics_;
  const OnEnqueued on_enqueued_;

  std::thread manager_;
  absl::Mutex publish_mu_;  // serialises create/event's sequence numbers

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool ack_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool serving_changed_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<ServingChanges::Subscription> serving_watch_;
  std::map<std::string, std::unique_ptr<Source>> sources_ ABSL_GUARDED_BY(mu_);

  struct LastEvent {
    std::string id;
    std::string values;  // fingerprint of the values
    absl::Time time;
  };
  absl::Mutex dedup_mu_;
  // By (source address, type).
  std::map<std::pair<std::string, std::string>, LastEvent> last_
      ABSL_GUARDED_BY(dedup_mu_);
};

}  // namespace loophost::host
