// Tests of HealthChecks: reports, versions, and waiting for a change.
#include "loops/sdk/health_checks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/time/clock.h"

namespace loophost::sdk {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

TEST(HealthChecks, ReportsEveryCheck) {
  HealthChecks health;
  EXPECT_THAT(health.Report(), IsEmpty());
  health.Set("b.two", "down");
  health.Set("a.one", "");
  EXPECT_THAT(health.Report(),
              ElementsAre(Pair("a.one", ""), Pair("b.two", "down")));
}

TEST(HealthChecks, VersionCountsChangesOnly) {
  HealthChecks health;
  EXPECT_EQ(health.version(), 0u);
  health.Set("a", "");
  EXPECT_EQ(health.version(), 1u);
  health.Set("a", "");  // same value: no change
  EXPECT_EQ(health.version(), 1u);
  health.Set("a", "broken");
  EXPECT_EQ(health.version(), 2u);
  health.Set("b", "broken");
  EXPECT_EQ(health.version(), 3u);
}

TEST(HealthChecks, WaitForChangeReturnsAtOnceWhenBehind) {
  HealthChecks health;
  health.Set("a", "");
  EXPECT_EQ(health.WaitForChange(0, absl::InfiniteFuture()), 1u);
}

TEST(HealthChecks, WaitForChangeStopsAtDeadline) {
  HealthChecks health;
  health.Set("a", "");
  EXPECT_EQ(health.WaitForChange(1, absl::Now() + absl::Milliseconds(20)), 1u);
}

TEST(HealthChecks, WaitForChangeWakesOnSet) {
  HealthChecks health;
  std::thread setter([&] { health.Set("a", "x"); });
  // No deadline: only the Set can end this wait.
  EXPECT_EQ(health.WaitForChange(0, absl::InfiniteFuture()), 1u);
  setter.join();
}

TEST(HealthChecks, CancelWakesWaitersForEver) {
  HealthChecks health;
  std::thread canceller([&] { health.Cancel(); });
  EXPECT_EQ(health.WaitForChange(0, absl::InfiniteFuture()), 0u);
  canceller.join();
  EXPECT_TRUE(health.cancelled());
  EXPECT_EQ(health.WaitForChange(0, absl::InfiniteFuture()), 0u);
}

}  // namespace
}  // namespace loophost::sdk
