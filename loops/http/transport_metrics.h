// TransportMetrics: the HTTP transport's Prometheus metrics, kept with the
// seed's (cloud-event-proxy's) names, types and labels where it has them:
//   cne_transport_events_published{address,status}  gauge, +1 per delivery
//     result; status "success", "failed" or "connection reset"
//   cne_transport_sender{address,status}  gauge: 1 for the state the sender to
//     that endpoint is in ("active" after a 2xx, "failed" after a failure)
// and our own:
//   loop_http_request_duration_seconds  histogram, Post -> answer
//   loop_http_connections_opened_total  counter (low = keep-alive works)
//   loop_http_deliveries_pending  gauge, accepted and not yet answered
//   loop_http_deliveries_rejected_total  counter, endpoint not http(s)
// `address` is the endpoint URL. Thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "loops/http/http_sender.h"

namespace loophost::loops::http {

class TransportMetrics {
 public:
  // prometheus-cpp throws on a bad or duplicate name: caught, returned.
  static absl::StatusOr<std::unique_ptr<TransportMetrics>> Register(
      prometheus::Registry& registry);

  // A delivery was handed to the sender.
  void Accepted();
  // Its result. Returns true when the endpoint's sender changed state
  // (delivering <-> failing), for a log line per change rather than per event.
  bool Delivered(const std::string& address, const HttpPostResult& result);
  // A delivery rejected before any request (bad endpoint; not labelled with
  // it: it may be any bytes).
  void Rejected();

 private:
  struct Address {
    prometheus::Gauge* success = nullptr;
    prometheus::Gauge* failed = nullptr;
    prometheus::Gauge* reset = nullptr;
    prometheus::Gauge* sender_active = nullptr;
    prometheus::Gauge* sender_failed = nullptr;
    bool failing = false;
    bool seen = false;
  };
  TransportMetrics() = default;
  Address& For(const std::string& address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  prometheus::Family<prometheus::Gauge>* published_ = nullptr;
  prometheus::Family<prometheus::Gauge>* sender_ = nullptr;
  prometheus::Histogram* duration_ = nullptr;
  prometheus::Counter* connections_ = nullptr;
  prometheus::Gauge* pending_ = nullptr;
  prometheus::Counter* rejected_ = nullptr;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Address> addresses_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loophost::loops::http
