// ResourceAddress: the node name goes between "/cluster/node/" and the suffix.
#include "events/ptp_events.h"

#include <gtest/gtest.h>

namespace loophost::events {
namespace {

TEST(ResourceAddressTest, JoinsNodeAndSuffix) {
  EXPECT_EQ(ResourceAddress("worker-1", kLockStateResource),
            "/cluster/node/worker-1/sync/ptp-status/lock-state");
  EXPECT_EQ(ResourceAddress("n", kSyncStateResource),
            "/cluster/node/n/sync/sync-status/sync-state");
}

}  // namespace
}  // namespace loophost::events
