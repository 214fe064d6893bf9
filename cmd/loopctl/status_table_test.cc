// Tests for loopctl's /plugins parsing and its tables.
#include "cmd/loopctl/status_table.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "common/status_matchers.h"

namespace loophost::loopctl {
namespace {

using ::loophost::testing::IsOk;
using ::loophost::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

constexpr char kPlugins[] = R"([
  {"name": "http", "version": "", "kinds": ["transport"], "in_process": true, "command": "",
   "state": "backoff", "pid": 0, "started_at": null, "uptime_seconds": null, "restarts": 3,
   "prometheus_port": 0, "last_error": "exited with status 1",
   "checks": {"http": "not running"}},
  {"name": "ptp", "version": "1.2.3", "kinds": ["event_source", "x"], "in_process": false,
   "command": "/usr/bin/loop-ptp", "state": "serving", "pid": 4242,
   "started_at": "2026-01-01T00:00:00Z", "uptime_seconds": 3725, "restarts": 0,
   "prometheus_port": 20001, "last_error": "",
   "checks": {"ptp": "", "ptp.phc2sys": "offset 900ns over 100ns", "ptp.ts2phc": "no lock"}}
])";

TEST(ParsePluginListTest, ReadsEveryField) {
  auto rows = ParsePluginList(kPlugins);
  ASSERT_THAT(rows, IsOk());
  ASSERT_EQ(rows->size(), 2u);
  const PluginRow& http = (*rows)[0];
  EXPECT_EQ(http.name, "http");
  EXPECT_TRUE(http.in_process);
  EXPECT_EQ(http.state, "backoff");
  EXPECT_EQ(http.uptime_seconds, std::nullopt);
  EXPECT_EQ(http.restarts, 3u);
  EXPECT_EQ(http.last_error, "exited with status 1");
  const PluginRow& ptp = (*rows)[1];
  EXPECT_EQ(ptp.version, "1.2.3");
  EXPECT_THAT(ptp.kinds, ElementsAre("event_source", "x"));
  EXPECT_EQ(ptp.command, "/usr/bin/loop-ptp");
  EXPECT_EQ(ptp.pid, 4242);
  EXPECT_EQ(ptp.uptime_seconds, 3725);
  EXPECT_EQ(ptp.prometheus_port, 20001);
  EXPECT_THAT(ptp.checks,
              ElementsAre(Pair("ptp", ""),
                          Pair("ptp.phc2sys", "offset 900ns over 100ns"),
                          Pair("ptp.ts2phc", "no lock")));
}

TEST(ParsePluginListTest, RejectsWhatIsNotAPluginList) {
  EXPECT_THAT(ParsePluginList("not json"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("not JSON")));
  EXPECT_THAT(ParsePluginList("{}"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("expected a JSON array")));
  EXPECT_THAT(
      ParsePluginList(R"([{"version": "1"}])"),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("unexpected JSON")));
  EXPECT_THAT(
      ParsePluginList(R"([{"name": "a", "pid": "12"}])"),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("unexpected JSON")));
  auto empty = ParsePluginList("[]");
  ASSERT_THAT(empty, IsOk());
  EXPECT_TRUE(empty->empty());
}

TEST(FormatUptimeTest, Cases) {
  struct Case {
    std::optional<int64_t> seconds;
    std::string want;
  } cases[] = {
      {std::nullopt, "-"}, {-1, "-"},        {0, "0s"},         {59, "59s"},
      {60, "1m00s"},       {3599, "59m59s"}, {3600, "1h00m"},   {3725, "1h02m"},
      {86399, "23h59m"},   {86400, "1d00h"}, {400000, "4d15h"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(FormatUptime(c.seconds), c.want)
        << (c.seconds ? *c.seconds : -999);
  }
}

TEST(HealthSummaryTest, Cases) {
  struct Case {
    std::map<std::string, std::string> checks;
    std::string want;
  } cases[] = {
      {{}, "-"},
      {{{"ptp", ""}, {"ptp.a", ""}}, "ok"},
      {{{"ptp", ""}, {"ptp.a", "bad\nthing"}}, "1 failing: ptp.a: bad thing"},
      {{{"ptp", "down"}, {"ptp.a", "bad"}}, "2 failing: ptp: down"},
      {{{"p", std::string(80, 'x')}},
       "1 failing: p: " + std::string(57, 'x') + "..."},
  };
  for (const Case& c : cases) {
    PluginRow row;
    row.checks = c.checks;
    EXPECT_EQ(HealthSummary(row), c.want);
  }
}

TEST(FormatStatusTableTest, AlignsColumns) {
  auto rows = ParsePluginList(kPlugins);
  ASSERT_THAT(rows, IsOk());
  EXPECT_EQ(
      FormatStatusTable(*rows),
      "PLUGIN  PID   STATE    UPTIME  RESTARTS  HEALTH\n"
      "http    -     backoff  -       3         1 failing: http: not running\n"
      "ptp     4242  serving  1h02m   0         2 failing: ptp.phc2sys: offset "
      "900ns "
      "over 100ns\n");
  EXPECT_EQ(FormatStatusTable({}),
            "PLUGIN  PID  STATE  UPTIME  RESTARTS  HEALTH\n");
}

TEST(FormatPluginsTableTest, ShowsModeAndPort) {
  auto rows = ParsePluginList(kPlugins);
  ASSERT_THAT(rows, IsOk());
  EXPECT_EQ(
      FormatPluginsTable(*rows),
      "PLUGIN  VERSION  KINDS           PORT   MODE\n"
      "http    -        transport       -      in-process\n"
      "ptp     1.2.3    event_source,x  20001  child /usr/bin/loop-ptp\n");
}

}  // namespace
}  // namespace loophost::loopctl
