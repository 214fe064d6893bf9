// RaiseOpenFileLimit: the soft limit on open files becomes the hard limit.
#include "common/process_tuning.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

namespace loophost {
namespace {

TEST(RaiseOpenFileLimitTest, SoftLimitBecomesTheHardLimit) {
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before), 0);
  // Start from a lower soft limit, as a default 1024 would be.
  if (before.rlim_max > 64) {
    rlimit lowered = before;
    lowered.rlim_cur = 64;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  }
  EXPECT_EQ(RaiseOpenFileLimit(), static_cast<uint64_t>(before.rlim_max));
  rlimit after{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &after), 0);
  EXPECT_EQ(after.rlim_cur, before.rlim_max);
  EXPECT_EQ(after.rlim_max, before.rlim_max);
}

}  // namespace
}  // namespace loophost
