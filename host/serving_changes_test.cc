// ServingChanges: every subscriber hears each notification until its handle
// is gone, and never after.
#include "host/serving_changes.h"

#include <gtest/gtest.h>

namespace loophost::host {
namespace {

TEST(ServingChangesTest, NotifiesEachSubscriberUntilItsHandleIsGone) {
  ServingChanges changes;
  int a = 0, b = 0;
  auto sub_a = changes.Subscribe([&] { ++a; });
  auto sub_b = changes.Subscribe([&] { ++b; });
  changes.Notify();
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 1);
  sub_a.reset();
  changes.Notify();
  EXPECT_EQ(a, 1);
  EXPECT_EQ(b, 2);
}

TEST(ServingChangesTest, NotifyWithoutSubscribersDoesNothing) {
  ServingChanges changes;
  changes.Notify();
  int calls = 0;
  auto sub = changes.Subscribe([&] { ++calls; });
  EXPECT_EQ(calls, 0);  // subscribing is not a change
}

}  // namespace
}  // namespace loophost::host
