// Summaries of measured samples, in the shape the go-plugin peer prints
// (n, min, median, p90, p99, p999, max, mean): nearest-rank percentiles on
// all samples, the median of an even count is the mean of the middle two.
// Pure functions, no state; thread-safe.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

namespace loophost::bench {

// Nearest-rank percentile (p in [0, 100]) of an ascending vector; 0 if empty.
double NearestRank(const std::vector<double>& sorted, double p);

// The samples in ascending order.
std::vector<double> Sorted(std::vector<double> samples);

// Median of an ascending vector; mean of the middle two for an even count.
double Median(const std::vector<double>& sorted);

// {"n","min","median","p90","p99","p999","max","mean"} of unsorted samples,
// in the samples' unit. An empty input gives {"n": 0}.
nlohmann::json Summarize(std::vector<double> samples);

}  // namespace loophost::bench
