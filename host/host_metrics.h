// HostMetrics: the host's own Prometheus metrics about its plugins (up,
// restarts, health checks, RPC latency, scrape failures). It owns the
// prometheus::Registry they live in and keeps per-plugin series so that a check
// or a plugin that goes away takes its series with it. Thread-safe: every
// method may be called from any thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace loophost::host {

class HostMetrics {
 public:
  HostMetrics();
  HostMetrics(const HostMetrics&) = delete;
  HostMetrics& operator=(const HostMetrics&) = delete;

  prometheus::Registry& registry();
  std::shared_ptr<prometheus::Registry> shared_registry();

  // loop_plugin_up{plugin}. Also creates the plugin's counters at 0, so that
  // rate() works from the first restart or scrape failure on.
  void SetPluginUp(const std::string& plugin, bool up);
  // loop_plugin_restarts_total{plugin}
  void IncPluginRestarts(const std::string& plugin);
  // loop_plugin_health{plugin,check}: 1 healthy ("" in `checks`), 0 failing.
  // Series of checks that are no longer reported are removed.
  void SetPluginHealth(const std::string& plugin,
                       const std::map<std::string, std::string>& checks);
  // loop_plugin_rpc_duration_seconds{plugin,method,code="OK"|"ERROR"}
  void ObserveRpc(const std::string& plugin, const std::string& method,
                  absl::Duration latency, bool ok);
  // loop_plugin_scrape_failures_total{plugin}
  void IncScrapeFailure(const std::string& plugin);
  // loop_plugin_metric_conflicts_total{plugin}: a metric family of this plugin
  // was left out of the merged /metrics because an earlier source declared it
  // with another type.
  void IncMetricConflict(const std::string& plugin);
  // Drops every series of `plugin`.
  void RemovePlugin(const std::string& plugin);

 private:
  struct PluginSeries {
    prometheus::Gauge* up = nullptr;
    prometheus::Counter* restarts = nullptr;
    prometheus::Counter* scrape_failures = nullptr;
    prometheus::Counter* metric_conflicts = nullptr;
    std::map<std::string, prometheus::Gauge*> health;  // by check name
    // by (method, code)
    std::map<std::pair<std::string, std::string>, prometheus::Histogram*> rpc;
  };

  PluginSeries& SeriesLocked(const std::string& plugin)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  prometheus::Counter& CounterLocked(
      prometheus::Family<prometheus::Counter>& family,
      prometheus::Counter*& slot, const std::string& plugin)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge>& up_;
  prometheus::Family<prometheus::Counter>& restarts_;
  prometheus::Family<prometheus::Gauge>& health_;
  prometheus::Family<prometheus::Histogram>& rpc_duration_;
  prometheus::Family<prometheus::Counter>& scrape_failures_;
  prometheus::Family<prometheus::Counter>& metric_conflicts_;

  // Series pointers stay valid until removed here; every Add/Remove happens
  // under mu_, so a series is never used after another thread removed it.
  absl::Mutex mu_;
  std::map<std::string, PluginSeries> plugins_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loophost::host
