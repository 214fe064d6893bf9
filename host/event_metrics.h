// EventMetrics: the event framework's Prometheus metrics, on the host's
// registry (so they are part of the merged /metrics). The cne_* families keep
// cloud-event-proxy's names, labels and types (gauges, counted up) so existing
// dashboards work; the loophost_* ones add what the seed did not have (outbox
// depth and age, dedup, retention drops). Thread-safe.
#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "host/event_store.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace loophost::host {

class EventMetrics {
 public:
  // Registers the families; the registry must outlive this object.
  explicit EventMetrics(prometheus::Registry& registry);
  EventMetrics(const EventMetrics&) = delete;
  EventMetrics& operator=(const EventMetrics&) = delete;

  // cne_api_events_published{address,status="success"|"fail"}: events posted
  // to create/event, by resource address.
  void ApiEventPublished(const std::string& address, bool ok);
  // cne_api_publishers{status="active"}, cne_api_subscriptions{status=...}.
  void SetActivePublishers(size_t count);
  void SetActiveSubscriptions(size_t count);
  // cne_api_subscriptions{status="failed to create"|"failed to delete"} += 1.
  void SubscriptionCreateFailed();
  void SubscriptionDeleteFailed();
  // cne_transport_events_received{address,status="success"|"failed"}: events
  // taken from source loops, by resource address.
  void EventReceived(const std::string& address, bool ok);
  // loophost_deliveries_total{result="delivered"|"failed"}: delivery results
  // as the host got them. (cne_transport_events_published and
  // cne_transport_sender, per endpoint, are the transport loop's.)
  void DeliveryResult(bool delivered);
  // cne_transport_receiver{address,status="active"}: 1 per publisher address.
  // Series not in the argument are removed.
  void SetReceivers(const std::set<std::string>& publisher_addresses);
  // cne_events_ack{type,status="success"|"failed"}: events accepted (or
  // rejected: unknown resource or type) from sources, by event type.
  void EventAcked(const std::string& type, bool ok);
  // cne_status_check_received{type,status="success"|"failed"}: CurrentState
  // requests, by resource address.
  void StatusCheck(const std::string& address, bool ok);

  // loophost_events_deduplicated_total{source,type}
  void EventDeduplicated(const std::string& source, const std::string& type);
  // loophost_outbox_dropped_total{subscription}: rows retention dropped.
  void OutboxDropped(const std::string& subscription_id, uint64_t rows);
  // loophost_subscriptions_removed_total{reason}: removed by the host itself.
  void SubscriptionRemoved(const std::string& reason);
  // loophost_outbox_depth{subscription,endpoint} and
  // loophost_outbox_oldest_age_seconds{subscription,endpoint} (0 when empty).
  // Series of subscriptions that are gone are removed.
  void SetOutboxStats(const std::vector<OutboxStats>& stats, absl::Time now);

 private:
  using Labels = std::map<std::string, std::string>;
  void SetGaugeSet(prometheus::Family<prometheus::Gauge>& family,
                   std::map<std::string, prometheus::Gauge*>& current,
                   const std::map<std::string, int>& values)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  prometheus::Family<prometheus::Gauge>& api_events_published_;
  prometheus::Family<prometheus::Gauge>& api_publishers_;
  prometheus::Family<prometheus::Gauge>& api_subscriptions_;
  prometheus::Family<prometheus::Gauge>& transport_events_received_;
  prometheus::Family<prometheus::Gauge>& transport_receiver_;
  prometheus::Family<prometheus::Gauge>& events_ack_;
  prometheus::Family<prometheus::Gauge>& status_check_received_;
  prometheus::Family<prometheus::Counter>& deliveries_;
  prometheus::Counter& delivered_;  // of deliveries_, one per result
  prometheus::Counter& failed_;
  prometheus::Family<prometheus::Counter>& deduplicated_;
  prometheus::Family<prometheus::Counter>& outbox_dropped_;
  prometheus::Family<prometheus::Counter>& subscriptions_removed_;
  prometheus::Family<prometheus::Gauge>& outbox_depth_;
  prometheus::Family<prometheus::Gauge>& outbox_oldest_age_;

  absl::Mutex mu_;
  std::map<std::string, prometheus::Gauge*> receivers_ ABSL_GUARDED_BY(mu_);
  // By subscription id: (depth, oldest age).
  std::map<std::string, std::pair<prometheus::Gauge*, prometheus::Gauge*>>
      outbox_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loophost::host
