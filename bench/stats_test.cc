// Tests for stats.h: nearest-rank percentiles and the median rule match the
// go-plugin peer's, so ratios compare like with like.
#include "bench/stats.h"

#include <gtest/gtest.h>

namespace loophost::bench {
namespace {

TEST(NearestRankTest, PicksTheCeilRank) {
  const std::vector<double> v = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(NearestRank(v, 90), 9);
  EXPECT_EQ(NearestRank(v, 99), 10);
  EXPECT_EQ(NearestRank(v, 50), 5);
  EXPECT_EQ(NearestRank(v, 0), 1);
  EXPECT_EQ(NearestRank(v, 100), 10);
}

TEST(NearestRankTest, TwentySamplesP90IsTheEighteenth) {
  std::vector<double> v;
  for (int i = 1; i <= 20; ++i) v.push_back(i);
  EXPECT_EQ(NearestRank(v, 90), 18);
  EXPECT_EQ(NearestRank(v, 99), 20);
}

TEST(NearestRankTest, EmptyIsZero) { EXPECT_EQ(NearestRank({}, 50), 0); }

TEST(MedianTest, EvenCountAveragesTheMiddleTwo) {
  EXPECT_EQ(Median({1, 2, 3, 10}), 2.5);
  EXPECT_EQ(Median({1, 2, 3}), 2);
}

TEST(SummarizeTest, HasThePeersKeys) {
  nlohmann::json s = Summarize({4, 1, 3, 2});
  EXPECT_EQ(s["n"], 4);
  EXPECT_EQ(s["min"], 1.0);
  EXPECT_EQ(s["max"], 4.0);
  EXPECT_EQ(s["median"], 2.5);
  EXPECT_EQ(s["p90"], 4.0);
  EXPECT_EQ(s["mean"], 2.5);
  EXPECT_TRUE(s.contains("p99"));
  EXPECT_TRUE(s.contains("p999"));
}

TEST(SummarizeTest, EmptyHasOnlyN) {
  EXPECT_EQ(Summarize({}), nlohmann::json({{"n", 0}}));
}

}  // namespace
}  // namespace loophost::bench
