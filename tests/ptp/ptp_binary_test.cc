// loop-ptp run as operators run it: --replay twice on the same file gives the
// same bytes (and the events of the real backup-master log), --explain gives
// one JSON object per line, bad threshold values exit 2 with one line naming
// the variable, and started by hand without a host it says so.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "tests/testing/child_process.h"

namespace loophost::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

const std::string kData = LH_PTP_TEST_DATA;

RunResult LoopPtp(const TempDir& dir, std::vector<std::string> args,
                  std::vector<std::string> env = {}) {
  ChildOptions options;
  options.argv = {LH_LOOP_PTP_BINARY};
  for (auto& a : args) options.argv.push_back(std::move(a));
  options.env = std::move(env);
  options.env.push_back("PATH=/usr/bin:/bin");
  return RunToExit(std::move(options), dir, absl::Seconds(60));
}

class LoopPtpBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("lh-loop-ptp-");
    ASSERT_THAT(dir, IsOk());
    dir_ = std::make_unique<TempDir>(std::move(*dir));
  }
  std::unique_ptr<TempDir> dir_;
};

TEST_F(LoopPtpBinaryTest, ReplayIsByteForByteDeterministic) {
  std::vector<std::string> env = {"PTP_THRESHOLD_MAX_OFFSET_NS=3000",
                                  "PTP_THRESHOLD_MIN_OFFSET_NS=-3000",
                                  "PTP_HOLDOVER_TIMEOUT_S=5"};
  std::vector<std::string> args = {
      "--replay", kData + "/B-backup-master/slave.log", "--node", "worker-1"};
  RunResult first = LoopPtp(*dir_, args, env);
  RunResult second = LoopPtp(*dir_, args, env);
  ASSERT_TRUE(first.status.ExitedWith(0)) << first.err;
  ASSERT_TRUE(second.status.ExitedWith(0)) << second.err;
  EXPECT_EQ(first.out, second.out);
  std::vector<std::string> lines =
      absl::StrSplit(first.out, '\n', absl::SkipEmpty());
  std::vector<std::string> got;
  for (const std::string& line : lines) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    EXPECT_EQ(j["specversion"], "1.0");
    EXPECT_THAT(j["source"].get<std::string>(),
                HasSubstr("/cluster/node/worker-1/sync/"));
    got.push_back(
        absl::StrCat(j["data"]["values"][0]["value"].get<std::string>(), "@",
                     j["time"].get<std::string>()));
  }
  // Lock-state and sync-state, at the log's own (CLOCK_MONOTONIC) times.
  EXPECT_THAT(got, ElementsAre("FREERUN@1970-01-01T00:31:06.393000000Z",
                               "FREERUN@1970-01-01T00:31:06.393000000Z",
                               "LOCKED@1970-01-01T00:31:23.395000000Z",
                               "LOCKED@1970-01-01T00:31:23.395000000Z",
                               "HOLDOVER@1970-01-01T00:31:42.732000000Z",
                               "HOLDOVER@1970-01-01T00:31:42.732000000Z",
                               "FREERUN@1970-01-01T00:31:47.732000000Z",
                               "FREERUN@1970-01-01T00:31:47.732000000Z",
                               "LOCKED@1970-01-01T00:32:06.735000000Z",
                               "LOCKED@1970-01-01T00:32:06.735000000Z"));
  // The same file under another config name is another stream of ids.
  args.push_back("--config-name");
  args.push_back("ptp4l.1.config");
  RunResult third = LoopPtp(*dir_, args, env);
  ASSERT_TRUE(third.status.ExitedWith(0));
  std::vector<std::string> third_lines =
      absl::StrSplit(third.out, '\n', absl::SkipEmpty());
  EXPECT_THAT(third_lines, SizeIs(10));
}

TEST_F(LoopPtpBinaryTest, ExplainPrintsOneObjectPerLine) {
  RunResult run =
      LoopPtp(*dir_, {"--explain", kData + "/C-summary-stats/slave.log"});
  ASSERT_TRUE(run.status.ExitedWith(0)) << run.err;
  std::vector<std::string> lines =
      absl::StrSplit(run.out, '\n', absl::SkipEmpty());
  ASSERT_THAT(lines, SizeIs(19));
  auto j = nlohmann::json::parse(lines[7]);
  EXPECT_EQ(j["line"], 8);
  EXPECT_EQ(j["kind"], "summary");
  EXPECT_EQ(j["offset_ns"], 431);
  EXPECT_EQ(j["max_offset_ns"], 1264);
}

TEST_F(LoopPtpBinaryTest, BadValuesExit2NamingTheVariable) {
  for (const char* env :
       {"PTP_THRESHOLD_MAX_OFFSET_NS=ten", "PTP_THRESHOLD_MIN_OFFSET_NS=500",
        "PTP_HOLDOVER_TIMEOUT_S=-3"}) {
    RunResult run = LoopPtp(
        *dir_, {"--replay", kData + "/C-summary-stats/slave.log"}, {env});
    EXPECT_TRUE(run.status.ExitedWith(2))
        << env << ": " << run.status.ToString();
    std::string var(env, std::string(env).find('='));
    EXPECT_THAT(run.err, HasSubstr(var)) << env;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
    EXPECT_EQ(run.out, "");
  }
}

TEST_F(LoopPtpBinaryTest, MissingFileAndNoHost) {
  RunResult missing = LoopPtp(*dir_, {"--replay", dir_->Join("nope.log")});
  EXPECT_TRUE(missing.status.ExitedWith(1));
  EXPECT_THAT(missing.err, HasSubstr("nope.log: cannot read"));
  RunResult by_hand = LoopPtp(*dir_, {});
  EXPECT_TRUE(by_hand.status.ExitedWith(1));
  EXPECT_THAT(by_hand.err, HasSubstr("PTP_PLUGIN_CMD"));
}

}  // namespace
}  // namespace loophost::testing
