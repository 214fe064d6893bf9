// Tests for HostMetrics: the series it exposes and the ones it removes.
#include "host/host_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "prometheus/text_serializer.h"

namespace loophost::host {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Expose(HostMetrics& metrics) {
  return prometheus::TextSerializer().Serialize(metrics.registry().Collect());
}

TEST(HostMetricsTest, UpCreatesCountersAtZero) {
  HostMetrics metrics;
  metrics.SetPluginUp("ptp", true);
  const std::string text = Expose(metrics);
  EXPECT_THAT(text, HasSubstr("loop_plugin_up{plugin=\"ptp\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("loop_plugin_restarts_total{plugin=\"ptp\"} 0\n"));
  EXPECT_THAT(
      text, HasSubstr("loop_plugin_scrape_failures_total{plugin=\"ptp\"} 0\n"));
  metrics.SetPluginUp("ptp", false);
  metrics.IncPluginRestarts("ptp");
  metrics.IncPluginRestarts("ptp");
  metrics.IncScrapeFailure("ptp");
  metrics.IncMetricConflict("ptp");
  const std::string after = Expose(metrics);
  EXPECT_THAT(after, HasSubstr("loop_plugin_up{plugin=\"ptp\"} 0\n"));
  EXPECT_THAT(after,
              HasSubstr("loop_plugin_restarts_total{plugin=\"ptp\"} 2\n"));
  EXPECT_THAT(
      after,
      HasSubstr("loop_plugin_scrape_failures_total{plugin=\"ptp\"} 1\n"));
  EXPECT_THAT(
      after,
      HasSubstr("loop_plugin_metric_conflicts_total{plugin=\"ptp\"} 1\n"));
}

TEST(HostMetricsTest, HealthChecksNoLongerReportedAreRemoved) {
  HostMetrics metrics;
  metrics.SetPluginHealth("ptp", {{"ptp", ""}, {"ptp.ts2phc", "no lock"}});
  std::string text = Expose(metrics);
  EXPECT_THAT(
      text, HasSubstr("loop_plugin_health{check=\"ptp\",plugin=\"ptp\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("loop_plugin_health{check=\"ptp.ts2phc\",plugin=\"ptp\"} 0\n"));

  metrics.SetPluginHealth("ptp", {{"ptp", "gone"}});
  text = Expose(metrics);
  EXPECT_THAT(
      text, HasSubstr("loop_plugin_health{check=\"ptp\",plugin=\"ptp\"} 0\n"));
  EXPECT_THAT(text, Not(HasSubstr("ptp.ts2phc")));
}

TEST(HostMetricsTest, RpcHistogramHasBucketsFrom50usTo10s) {
  HostMetrics metrics;
  metrics.ObserveRpc("ptp", "Describe", absl::Microseconds(70), true);
  metrics.ObserveRpc("ptp", "Describe", absl::Seconds(3), false);
  const std::string text = Expose(metrics);
  EXPECT_THAT(text,
              HasSubstr("# TYPE loop_plugin_rpc_duration_seconds histogram"));
  EXPECT_THAT(
      text,
      HasSubstr("loop_plugin_rpc_duration_seconds_bucket{code=\"OK\",method="
                "\"Describe\",plugin=\"ptp\",le=\"5e-05\"} 0\n"));
  EXPECT_THAT(
      text,
      HasSubstr("loop_plugin_rpc_duration_seconds_bucket{code=\"OK\",method="
                "\"Describe\",plugin=\"ptp\",le=\"0.0001\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("loop_plugin_rpc_duration_seconds_bucket{code=\"ERROR\",method="
                "\"Describe\",plugin=\"ptp\",le=\"10\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("loop_plugin_rpc_duration_seconds_count{code=\"ERROR\",method="
                "\"Describe\",plugin=\"ptp\"} 1\n"));
}

TEST(HostMetricsTest, RemovePluginDropsEverySeriesOfThatPluginOnly) {
  HostMetrics metrics;
  for (const std::string plugin : {"ptp", "http"}) {
    metrics.SetPluginUp(plugin, true);
    metrics.IncPluginRestarts(plugin);
    metrics.SetPluginHealth(plugin, {{plugin, ""}});
    metrics.ObserveRpc(plugin, "Describe", absl::Milliseconds(1), true);
    metrics.IncScrapeFailure(plugin);
    metrics.IncMetricConflict(plugin);
  }
  metrics.RemovePlugin("ptp");
  metrics.RemovePlugin("never-seen");
  const std::string text = Expose(metrics);
  EXPECT_THAT(text, Not(HasSubstr("\"ptp\"")));
  EXPECT_THAT(text, HasSubstr("loop_plugin_up{plugin=\"http\"} 1\n"));
  EXPECT_THAT(
      text,
      HasSubstr("loop_plugin_health{check=\"http\",plugin=\"http\"} 1\n"));

  // A removed plugin can come back.
  metrics.IncPluginRestarts("ptp");
  EXPECT_THAT(Expose(metrics),
              HasSubstr("loop_plugin_restarts_total{plugin=\"ptp\"} 1\n"));
}

TEST(HostMetricsTest, ConcurrentUseFromManyThreads) {
  HostMetrics metrics;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&metrics, t] {
      const std::string plugin = "p" + std::to_string(t % 2);
      for (int i = 0; i < 200; ++i) {
        metrics.ObserveRpc(plugin, "HealthReport", absl::Microseconds(i),
                           i % 3 != 0);
        metrics.SetPluginHealth(plugin, {{plugin, i % 2 ? "" : "bad"}});
        if (i % 50 == 0) metrics.RemovePlugin(plugin);
        metrics.IncScrapeFailure(plugin);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_THAT(Expose(metrics),
              HasSubstr("loop_plugin_scrape_failures_total{plugin=\"p0\"}"));
}

}  // namespace
}  // namespace loophost::host
