// Implementation of HostMetrics (host_metrics.h) on prometheus-cpp families.
#include "host/host_metrics.h"

#include <vector>

#include "absl/time/time.h"

namespace loophost::host {
namespace {

// 50us .. 10s: an in-process RPC takes tens of microseconds, a stuck one hits a
// deadline.
const prometheus::Histogram::BucketBoundaries& RpcBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1.0,   2.5,    5.0,   10.0};
  return *kBuckets;
}

}  // namespace

// The names are constants, so Register() throwing here would be a programmer
// error.
HostMetrics::HostMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      up_(prometheus::BuildGauge()
              .Name("loop_plugin_up")
              .Help("1 when the plugin is serving, 0 otherwise.")
              .Register(*registry_)),
      restarts_(prometheus::BuildCounter()
                    .Name("loop_plugin_restarts_total")
                    .Help("Times the host restarted the plugin.")
                    .Register(*registry_)),
      health_(
          prometheus::BuildGauge()
              .Name("loop_plugin_health")
              .Help("1 when the plugin's health check passes, 0 when it fails.")
              .Register(*registry_)),
      rpc_duration_(prometheus::BuildHistogram()
                        .Name("loop_plugin_rpc_duration_seconds")
                        .Help("Latency of the host's RPCs to the plugin.")
                        .Register(*registry_)),
      scrape_failures_(
          prometheus::BuildCounter()
              .Name("loop_plugin_scrape_failures_total")
              .Help("Scrapes of the plugin's metrics that failed or timed out.")
              .Register(*registry_)),
      metric_conflicts_(
          prometheus::BuildCounter()
              .Name("loop_plugin_metric_conflicts_total")
              .Help("Metric families of the plugin left out of the merged "
                    "/metrics "
                    "because an earlier source gave them another type.")
              .Register(*registry_)) {}

prometheus::Registry& HostMetrics::registry() { return *registry_; }

std::shared_ptr<prometheus::Registry> HostMetrics::shared_registry() {
  return registry_;
}

HostMetrics::PluginSeries& HostMetrics::SeriesLocked(
    const std::string& plugin) {
  return plugins_[plugin];
}

prometheus::Counter& HostMetrics::CounterLocked(
    prometheus::Family<prometheus::Counter>& family, prometheus::Counter*& slot,
    const std::string& plugin) {
  if (slot == nullptr) slot = &family.Add({{"plugin", plugin}});
  return *slot;
}

void HostMetrics::SetPluginUp(const std::string& plugin, bool up) {
  absl::MutexLock lock(&mu_);
  PluginSeries& s = SeriesLocked(plugin);
  if (s.up == nullptr) s.up = &up_.Add({{"plugin", plugin}});
  s.up->Set(up ? 1 : 0);
  CounterLocked(restarts_, s.restarts, plugin);
  CounterLocked(scrape_failures_, s.scrape_failures, plugin);
}

void HostMetrics::IncPluginRestarts(const std::string& plugin) {
  absl::MutexLock lock(&mu_);
  PluginSeries& s = SeriesLocked(plugin);
  CounterLocked(restarts_, s.restarts, plugin).Increment();
}

void HostMetrics::SetPluginHealth(
    const std::string& plugin,
    const std::map<std::string, std::string>& checks) {
  absl::MutexLock lock(&mu_);
  PluginSeries& s = SeriesLocked(plugin);
  for (auto it = s.health.begin(); it != s.health.end();) {
    if (checks.count(it->first) == 0) {
      health_.Remove(it->second);
      it = s.health.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [check, error] : checks) {
    prometheus::Gauge*& gauge = s.health[check];
    if (gauge == nullptr)
      gauge = &health_.Add({{"plugin", plugin}, {"check", check}});
    gauge->Set(error.empty() ? 1 : 0);
  }
}

void HostMetrics::ObserveRpc(const std::string& plugin,
                             const std::string& method, absl::Duration latency,
                             bool ok) {
  const std::string code = ok ? "OK" : "ERROR";
  absl::MutexLock lock(&mu_);
  PluginSeries& s = SeriesLocked(plugin);
  prometheus::Histogram*& histogram = s.rpc[{method, code}];
  if (histogram == nullptr) {
    histogram = &rpc_duration_.Add(
        {{"plugin", plugin}, {"method", method}, {"code", code}}, RpcBuckets());
  }
  histogram->Observe(absl::ToDoubleSeconds(latency));
}

void HostMetrics::IncScrapeFailure(const std::string& plugin) {
  absl::MutexLock lock(&mu_);
  PluginSeries& s = SeriesLocked(plugin);
  CounterLocked(scrape_failures_, s.scrape_failures, plugin).Increment();
}

void HostMetrics::IncMetricConflict(const std::string& plugin) {
  absl::MutexLock lock(&mu_);
  PluginSeries& s = SeriesLocked(plugin);
  CounterLocked(metric_conflicts_, s.metric_conflicts, plugin).Increment();
}

void HostMetrics::RemovePlugin(const std::string& plugin) {
  absl::MutexLock lock(&mu_);
  auto it = plugins_.find(plugin);
  if (it == plugins_.end()) return;
  PluginSeries& s = it->second;
  if (s.up != nullptr) up_.Remove(s.up);
  if (s.restarts != nullptr) restarts_.Remove(s.restarts);
  if (s.scrape_failures != nullptr) scrape_failures_.Remove(s.scrape_failures);
  if (s.metric_conflicts != nullptr)
    metric_conflicts_.Remove(s.metric_conflicts);
  for (const auto& [check, gauge] : s.health) health_.Remove(gauge);
  for (const auto& [key, histogram] : s.rpc) rpc_duration_.Remove(histogram);
  plugins_.erase(it);
}

}  // namespace loophost::host
