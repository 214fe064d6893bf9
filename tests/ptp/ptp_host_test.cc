// loophost with the PTP monitor, in-process (PTP_PLUGIN=true) and as a child
// (PTP_PLUGIN_CMD=loop-ptp): a real log appended to PTP_LOG_FILE shows up as
// openshift_ptp_* in the host's merged /metrics (promtool clean apart from
// the names kept for cloud-event-proxy), the ptp checks in /health, and a
// SIGKILLed plugin comes back with its state restored from LOOP_STATE_DIR.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "tests/testing/child_process.h"
#include "tests/testing/loophost_process.h"

namespace loophost::testing {
namespace {

using ::testing::HasSubstr;

const std::string kData = LH_PTP_TEST_DATA;
constexpr absl::Duration kWait = absl::Seconds(30);

// promtool's findings on `exposition`, minus the names cloud-event-proxy
// fixed ("_ns" reads as an abbreviated unit to promtool); "" when clean.
std::string PromtoolProblems(const TempDir& dir,
                             const std::string& exposition) {
  std::string input = dir.Join("exposition.txt");
  std::ofstream(input) << exposition;
  ChildOptions options;
  options.argv = {"/bin/sh", "-c",
                  absl::StrCat(LH_PROMTOOL, " check metrics < '", input, "'")};
  options.env = {"PATH=/usr/bin:/bin"};
  options.stdout_path = dir.Join("promtool.out");
  options.stderr_path = dir.Join("promtool.out");
  auto child = ChildProcess::Spawn(options);
  if (!child.ok()) return std::string(child.status().message());
  auto status = (*child)->Wait(absl::Seconds(30));
  std::string problems;
  for (absl::string_view line :
       absl::StrSplit(ReadFileOrEmpty(dir.Join("promtool.out")), '\n',
                      absl::SkipEmpty())) {
    bool kept = false;
    for (const char* name :
         {"openshift_ptp_offset_ns ", "openshift_ptp_max_offset_ns ",
          "openshift_ptp_frequency_adjustment_ns ", "openshift_ptp_delay_ns ",
          "openshift_ptp_process_restart_count "}) {
      kept = kept || absl::StartsWith(line, name);
    }
    if (!kept) absl::StrAppend(&problems, line, "\n");
  }
  if (!status.ok()) absl::StrAppend(&problems, "promtool did not finish\n");
  return problems;
}

class PtpHostTest : public ::testing::TestWithParam<bool> {
 protected:
  bool child() const { return GetParam(); }

  void SetUp() override {
    LoophostOptions options;
    options.binary = LH_LOOPHOST_BINARY;
    options.env = {{"PTP_PLUGIN", "true"},
                   {"PTP_LOG_FILE", "${WORK_DIR}/ptp.log"},
                   {"PTP_THRESHOLD_MAX_OFFSET_NS", "3000"},
                   {"PTP_THRESHOLD_MIN_OFFSET_NS", "-3000"}};
    if (child()) options.env["PTP_PLUGIN_CMD"] = LH_LOOP_PTP_BINARY;
    options.files = {{"ptp.log", ""}};
    auto host = LoophostProcess::Start(std::move(options));
    ASSERT_THAT(host, IsOk());
    host_ = std::move(*host);
    ASSERT_TRUE(
        host_->WaitFor([&] { return host_->PluginState("ptp") == "serving"; },
                       kWait, "ptp serving"));
    ASSERT_TRUE(host_->WaitFor([&] { return HealthHas("ok ptp.input\n"); },
                               kWait, "ptp.input healthy"));
  }

  bool HealthHas(const std::string& needle) {
    auto health = host_->Get("/health");
    return health.ok() && absl::StrContains(health->body, needle);
  }

  void AppendLog(const std::string& path) {
    std::ifstream in(path);
    std::ofstream out(host_->WorkPath("ptp.log"), std::ios::app);
    out << in.rdbuf();
  }

  std::unique_ptr<LoophostProcess> host_;
};

TEST_P(PtpHostTest, MetricsAndHealthInTheHost) {
  AppendLog(kData + "/B-backup-master/slave.log");
  const std::map<std::string, std::string> servo = {
      {"process", "ptp4l"}, {"iface", "master"}, {"node", "lh-test-node"}};
  // The log's last offset line: "master offset 233 s2 ... path delay 2270".
  ASSERT_TRUE(host_->WaitFor(
      [&] {
        return host_->Metric("openshift_ptp_offset_ns",
                             {{"from", "master"}, {"process", "ptp4l"}}) == 233;
      },
      kWait, "openshift_ptp_offset_ns 233"));
  EXPECT_EQ(host_->Metric("openshift_ptp_delay_ns", servo), 2270);
  EXPECT_EQ(host_->Metric("openshift_ptp_clock_state", servo), 1);
  EXPECT_EQ(host_->Metric("openshift_ptp_interface_role",
                          {{"process", "ptp4l"}, {"iface", "port1"}}),
            1);
  EXPECT_EQ(host_->Metric("openshift_ptp_threshold",
                          {{"threshold", "MaxOffsetThreshold"},
                           {"profile", "ptp4l.0.config"}}),
            3000);
  auto metrics = host_->Get("/metrics");
  ASSERT_THAT(metrics, IsOk());
  EXPECT_THAT(metrics->body, HasSubstr("# HELP openshift_ptp_clock_state 0 = "
                                       "FREERUN, 1 = LOCKED, 2 = HOLDOVER"));
  if (std::string(LH_PROMTOOL).empty()) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  }
  auto dir = TempDir::Create("lh-ptp-promtool-");
  ASSERT_THAT(dir, IsOk());
  EXPECT_EQ(PromtoolProblems(*dir, metrics->body), "");
  auto health = host_->Get("/health");
  ASSERT_THAT(health, IsOk());
  EXPECT_EQ(health->status, 200) << health->body;
  for (const char* check :
       {"ok ptp\n", "ok ptp.input\n", "ok ptp.state\n", "ok ptp.events\n"}) {
    EXPECT_THAT(health->body, HasSubstr(check));
  }
}

TEST_P(PtpHostTest, KilledPluginComesBackWithItsState) {
  if (!child()) GTEST_SKIP() << "a child process to kill";
  AppendLog(kData + "/B-backup-master/slave.log");
  const std::map<std::string, std::string> servo = {{"process", "ptp4l"},
                                                    {"iface", "master"}};
  ASSERT_TRUE(host_->WaitFor(
      [&] { return host_->Metric("openshift_ptp_offset_ns", servo) == 233; },
      kWait, "log processed"));
  pid_t pid = host_->PluginPid("ptp");
  ASSERT_GT(pid, 0);
  auto plugin = ForeignProcess::Open(pid);
  ASSERT_THAT(plugin, IsOk());
  ASSERT_THAT(plugin->Signal(SIGKILL), IsOk());
  ASSERT_TRUE(plugin->WaitExited(kWait));
  ASSERT_TRUE(host_->WaitFor(
      [&] {
        pid_t now = host_->PluginPid("ptp");
        return now > 0 && now != pid && host_->PluginState("ptp") == "serving";
      },
      kWait, "ptp restarted"));
  // No line came since: the states are the restored ones.
  ASSERT_TRUE(host_->WaitFor(
      [&] { return host_->Metric("openshift_ptp_clock_state", servo) == 1; },
      kWait, "clock_state restored"));
  EXPECT_EQ(host_->Metric("openshift_ptp_interface_role",
                          {{"process", "ptp4l"}, {"iface", "port1"}}),
            1);
  // And the file is followed from where the old process stopped.
  std::ofstream(host_->WorkPath("ptp.log"), std::ios::app)
      << "ptp4l[1958.738]: master offset 77 s2 freq +83 path delay 2270\n";
  ASSERT_TRUE(host_->WaitFor(
      [&] { return host_->Metric("openshift_ptp_offset_ns", servo) == 77; },
      kWait, "new line after the restart"));
}

INSTANTIATE_TEST_SUITE_P(Modes, PtpHostTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Child" : "InProcess";
                         });

}  // namespace
}  // namespace loophost::testing
