// Implementation of stats.h: the same arithmetic as the go-plugin peer's
// host (pct/median/summary in src/gppeer/host/main.go).
#include "bench/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>

namespace loophost::bench {

double NearestRank(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<int64_t>(
                  std::ceil(p / 100.0 * static_cast<double>(sorted.size()))) -
              1;
  rank = std::clamp<int64_t>(rank, 0, static_cast<int64_t>(sorted.size()) - 1);
  return sorted[static_cast<size_t>(rank)];
}

std::vector<double> Sorted(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  return samples;
}

double Median(const std::vector<double>& sorted) {
  const size_t n = sorted.size();
  if (n == 0) return 0;
  if (n % 2 == 1) return sorted[n / 2];
  return (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

nlohmann::json Summarize(std::vector<double> samples) {
  if (samples.empty()) return {{"n", 0}};
  std::sort(samples.begin(), samples.end());
  const double sum = std::accumulate(samples.begin(), samples.end(), 0.0);
  return {
      {"n", samples.size()},
      {"min", samples.front()},
      {"median", Median(samples)},
      {"p90", NearestRank(samples, 90)},
      {"p99", NearestRank(samples, 99)},
      {"p999", NearestRank(samples, 99.9)},
      {"max", samples.back()},
      {"mean", sum / static_cast<double>(samples.size())},
  };
}

}  // namespace loophost::bench
