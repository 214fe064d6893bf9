// Table-driven tests of the configuration value parsers.
#include "common/env_parse.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/status_matchers.h"

namespace loophost {
namespace {

using ::loophost::testing::IsOk;
using ::loophost::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ParseBoolValue, AcceptsCommonSpellings) {
  for (const char* v : {"true", "TRUE", "1", "yes", "on"}) {
    EXPECT_EQ(*ParseBoolValue("X", v), true) << v;
  }
  for (const char* v : {"false", "0", "no", "Off"}) {
    EXPECT_EQ(*ParseBoolValue("X", v), false) << v;
  }
  EXPECT_THAT(ParseBoolValue("PTP_PLUGIN", "maybe"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("PTP_PLUGIN=maybe: not a boolean")));
}

TEST(ParseIntValue, ChecksRange) {
  EXPECT_EQ(*ParseIntValue("N", "5", 1, 10), 5);
  EXPECT_THAT(ParseIntValue("N", "11", 1, 10),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("N=11: out of range [1, 10]")));
  EXPECT_THAT(ParseIntValue("N", "abc", 1, 10),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("N=abc: not an integer")));
}

TEST(ParseDurationValue, ParsesAndRejects) {
  EXPECT_EQ(*ParseDurationValue("D", "250ms"), absl::Milliseconds(250));
  EXPECT_THAT(ParseDurationValue("D", "5"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("D=5")));
  EXPECT_THAT(ParseDurationValue("D", "-1s"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("greater than zero")));
}

TEST(ParseHostPortValue, Forms) {
  auto a = ParseHostPortValue("A", "127.0.0.1:9091");
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9091);
  auto b = ParseHostPortValue("A", "[::1]:0");
  ASSERT_THAT(b, IsOk());
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 0);
  auto c = ParseHostPortValue("A", ":80");
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->host, "0.0.0.0");
  EXPECT_THAT(ParseHostPortValue("LOOPHOST_API_ADDR", "localhost"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("LOOPHOST_API_ADDR=localhost")));
  EXPECT_THAT(ParseHostPortValue("A", "h:70000"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseHostPortValue("A", "::1:80"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ParsePortRangeValue, Forms) {
  auto r = ParsePortRangeValue("R", "20000-20010");
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->first, 20000);
  EXPECT_EQ(r->last, 20010);
  EXPECT_THAT(ParsePortRangeValue("R", "20-10"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParsePortRangeValue("R", "0-10"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParsePortRangeValue("R", "x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace loophost
