// TransportMetrics (see transport_metrics.h). Per-address children are looked
// up once and cached: at tens of thousands of results a second the family's
// label hashing would otherwise show.
#include "loops/http/transport_metrics.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace loophost::loops::http {

absl::StatusOr<std::unique_ptr<TransportMetrics>> TransportMetrics::Register(
    prometheus::Registry& registry) {
  std::unique_ptr<TransportMetrics> m(new TransportMetrics());
  try {
    m->published_ =
        &prometheus::BuildGauge()
             .Name("cne_transport_events_published")
             .Help("Metric to get number of events published by the transport")
             .Register(registry);
    m->sender_ = &prometheus::BuildGauge()
                      .Name("cne_transport_sender")
                      .Help("Metric to get number of sender created")
                      .Register(registry);
    m->duration_ =
        &prometheus::BuildHistogram()
             .Name("loop_http_request_duration_seconds")
             .Help(
                 "Time from a delivery reaching the transport to the "
                 "subscriber's answer (or the failure)")
             .Register(registry)
             .Add({}, prometheus::Histogram::BucketBoundaries{
                          0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025,
                          0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
    m->connections_ = &prometheus::BuildCounter()
                           .Name("loop_http_connections_opened_total")
                           .Help("TCP connections opened to subscribers")
                           .Register(registry)
                           .Add({});
    m->pending_ = &prometheus::BuildGauge()
                       .Name("loop_http_deliveries_pending")
                       .Help("Deliveries accepted and not yet answered")
                       .Register(registry)
                       .Add({});
    m->rejected_ = &prometheus::BuildCounter()
                        .Name("loop_http_deliveries_rejected_total")
                        .Help("Deliveries whose endpoint is not an http(s) URL")
                        .Register(registry)
                        .Add({});
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("metrics: ", e.what()));
  }
  return m;
}

TransportMetrics::Address& TransportMetrics::For(const std::string& address) {
  Address& a = addresses_[address];
  if (!a.seen) {
    a.seen = true;
    a.success = &published_->Add({{"address", address}, {"status", "success"}});
    a.failed = &published_->Add({{"address", address}, {"status", "failed"}});
    a.reset = &published_->Add(
        {{"address", address}, {"status", "connection reset"}});
    a.sender_active =
        &sender_->Add({{"address", address}, {"status", "active"}});
    a.sender_failed =
        &sender_->Add({{"address", address}, {"status", "failed"}});
    a.sender_active->Set(1);
  }
  return a;
}

void TransportMetrics::Accepted() { pending_->Increment(); }

bool TransportMetrics::Delivered(const std::string& address,
                                 const HttpPostResult& result) {
  pending_->Decrement();
  duration_->Observe(absl::ToDoubleSeconds(result.latency));
  if (result.connections_opened > 0) {
    connections_->Increment(result.connections_opened);
  }
  absl::MutexLock lock(&mu_);
  Address& a = For(address);
  const bool ok = result.outcome == HttpOutcome::kDelivered;
  if (ok) {
    a.success->Increment();
  } else if (result.outcome == HttpOutcome::kConnectFailed ||
             result.outcome == HttpOutcome::kConnectionLost) {
    a.reset->Increment();
  } else {
    a.failed->Increment();
  }
  const bool changed = a.failing == ok;
  a.failing = !ok;
  a.sender_active->Set(ok ? 1 : 0);
  a.sender_failed->Set(ok ? 0 : 1);
  return changed;
}

void TransportMetrics::Rejected() { rejected_->Increment(); }

}  // namespace loophost::loops::http
