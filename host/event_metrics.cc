// Implementation of EventMetrics (event_metrics.h) on prometheus-cpp families.
// Label names are constants, so Add() throwing would be a programmer error.
#include "host/event_metrics.h"

namespace loophost::host {
namespace {

constexpr char kActive[] = "active";

prometheus::Family<prometheus::Gauge>& Gauge(prometheus::Registry& registry,
                                             const char* name,
                                             const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Counter>& Counter(prometheus::Registry& registry,
                                                 const char* name,
                                                 const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

}  // namespace

EventMetrics::EventMetrics(prometheus::Registry& registry)
    : api_events_published_(
          Gauge(registry, "cne_api_events_published",
                "Events published through the REST API (create/event).")),
      api_publishers_(
          Gauge(registry, "cne_api_publishers", "Publishers, by status.")),
      api_subscriptions_(Gauge(registry, "cne_api_subscriptions",
                               "Subscriptions, by status.")),
      transport_events_received_(
          Gauge(registry, "cne_transport_events_received",
                "Events received from source loops, by resource address.")),
      transport_receiver_(Gauge(registry, "cne_transport_receiver",
                                "Publishers received from, by address.")),
      events_ack_(Gauge(registry, "cne_events_ack",
                        "Events accepted from source loops, by type.")),
      status_check_received_(Gauge(registry, "cne_status_check_received",
                                   "CurrentState requests, by resource.")),
      deliveries_(Counter(registry, "loophost_deliveries_total",
                          "Delivery results the host got from the transport "
                          "loop.")),
      delivered_(deliveries_.Add({{"result", "delivered"}})),
      failed_(deliveries_.Add({{"result", "failed"}})),
      deduplicated_(Counter(registry, "loophost_events_deduplicated_total",
                            "Events coalesced with an identical one inside "
                            "the dedup window.")),
      outbox_dropped_(Counter(registry, "loophost_outbox_dropped_total",
                              "Undelivered outbox rows dropped by retention "
                              "(age or count).")),
      subscriptions_removed_(
          Counter(registry, "loophost_subscriptions_removed_total",
                  "Subscriptions the host removed by itself.")),
      outbox_depth_(Gauge(registry, "loophost_outbox_depth",
                          "Undelivered events, per subscription.")),
      outbox_oldest_age_(
          Gauge(registry, "loophost_outbox_oldest_age_seconds",
                "Age of the oldest undelivered event, per subscription (0 "
                "when none).")) {
  api_publishers_.Add({{"status", kActive}}).Set(0);
  api_subscriptions_.Add({{"status", kActive}}).Set(0);
}

void EventMetrics::ApiEventPublished(const std::string& address, bool ok) {
  api_events_published_
      .Add({{"address", address}, {"status", ok ? "success" : "fail"}})
      .Increment();
}

void EventMetrics::SetActivePublishers(size_t count) {
  api_publishers_.Add({{"status", kActive}}).Set(static_cast<double>(count));
}

void EventMetrics::SetActiveSubscriptions(size_t count) {
  api_subscriptions_.Add({{"status", kActive}}).Set(static_cast<double>(count));
}

void EventMetrics::SubscriptionCreateFailed() {
  api_subscriptions_.Add({{"status", "failed to create"}}).Increment();
}

void EventMetrics::SubscriptionDeleteFailed() {
  api_subscriptions_.Add({{"status", "failed to delete"}}).Increment();
}

void EventMetrics::EventReceived(const std::string& address, bool ok) {
  transport_events_received_
      .Add({{"address", address}, {"status", ok ? "success" : "failed"}})
      .Increment();
}

void EventMetrics::DeliveryResult(bool delivered) {
  (delivered ? delivered_ : failed_).Increment();
}

void EventMetrics::SetGaugeSet(
    prometheus::Family<prometheus::Gauge>& family,
    std::map<std::string, prometheus::Gauge*>& current,
    const std::map<std::string, int>& values) {
  for (auto it = current.begin(); it != current.end();) {
    if (values.count(it->first) == 0) {
      family.Remove(it->second);
      it = current.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [address, value] : values) {
    prometheus::Gauge*& gauge = current[address];
    if (gauge == nullptr) {
      gauge = &family.Add({{"address", address}, {"status", kActive}});
    }
    gauge->Set(value);
  }
}

void EventMetrics::SetReceivers(
    const std::set<std::string>& publisher_addresses) {
  std::map<std::string, int> values;
  for (const std::string& a : publisher_addresses) values[a] = 1;
  absl::MutexLock lock(&mu_);
  SetGaugeSet(transport_receiver_, receivers_, values);
}

void EventMetrics::EventAcked(const std::string& type, bool ok) {
  events_ack_.Add({{"type", type}, {"status", ok ? "success" : "failed"}})
      .Increment();
}

void EventMetrics::StatusCheck(const std::string& address, bool ok) {
  status_check_received_
      .Add({{"type", address}, {"status", ok ? "success" : "failed"}})
      .Increment();
}

void EventMetrics::EventDeduplicated(const std::string& source,
                                     const std::string& type) {
  deduplicated_.Add({{"source", source}, {"type", type}}).Increment();
}

void EventMetrics::OutboxDropped(const std::string& subscription_id,
                                 uint64_t rows) {
  outbox_dropped_.Add({{"subscription", subscription_id}})
      .Increment(static_cast<double>(rows));
}

void EventMetrics::SubscriptionRemoved(const std::string& reason) {
  subscriptions_removed_.Add({{"reason", reason}}).Increment();
}

void EventMetrics::SetOutboxStats(const std::vector<OutboxStats>& stats,
                                  absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::set<std::string> seen;
  for (const OutboxStats& s : stats) {
    seen.insert(s.subscription_id);
    auto& [depth, age] = outbox_[s.subscription_id];
    if (depth == nullptr) {
      const Labels labels = {{"subscription", s.subscription_id},
                             {"endpoint", s.endpoint}};
      depth = &outbox_depth_.Add(labels);
      age = &outbox_oldest_age_.Add(labels);
    }
    depth->Set(static_cast<double>(s.depth));
    age->Set(s.depth == 0 || s.oldest >= now
                 ? 0.0
                 : absl::ToDoubleSeconds(now - s.oldest));
  }
  for (auto it = outbox_.begin(); it != outbox_.end();) {
    if (seen.count(it->first) == 0) {
      outbox_depth_.Remove(it->second.first);
      outbox_oldest_age_.Remove(it->second.second);
      it = outbox_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace loophost::host
