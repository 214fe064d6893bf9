// PtpMetrics: the openshift_ptp_* series with cloud-event-proxy's names,
// labels and HELP texts after the real logs and daemon lines; no empty label;
// promtool's lint clean apart from the names kept for compatibility.
#include "loops/ptp/ptp_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "loops/ptp/ptp_monitor.h"

namespace loophost::loops::ptp {
namespace {

using ::loophost::testing::IsOk;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kData = LH_PTP_TEST_DATA;

class PtpMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    thresholds_.max_offset_ns = 3000;
    thresholds_.min_offset_ns = -3000;
    auto metrics = PtpMetrics::Create(registry_, "node-a", thresholds_,
                                      kDefaultConfigName);
    ASSERT_THAT(metrics, IsOk());
    metrics_ = *std::move(metrics);
    PtpMonitor::Options options;
    options.node = "node-a";
    options.thresholds = thresholds_;
    monitor_ = std::make_unique<PtpMonitor>(
        options, [](PtpResource, v1::CloudEvent) {}, metrics_.get());
  }

  void Replay(const std::string& path) {
    std::ifstream in(path);
    ASSERT_TRUE(in) << path;
    for (std::string line; std::getline(in, line);) monitor_->ReplayLine(line);
  }

  std::string Exposition() {
    return prometheus::TextSerializer().Serialize(registry_.Collect());
  }

  PtpThresholds thresholds_;
  prometheus::Registry registry_;
  std::unique_ptr<PtpMetrics> metrics_;
  std::unique_ptr<PtpMonitor> monitor_;
};

TEST_F(PtpMetricsTest, BackupMasterSeries) {
  Replay(kData + "/B-backup-master/slave.log");
  std::string text = Exposition();
  // The last offset line: "master offset 233 s2 freq +83 path delay 2270".
  EXPECT_THAT(text, HasSubstr("openshift_ptp_offset_ns{from=\"master\","
                              "iface=\"master\",node=\"node-a\","
                              "process=\"ptp4l\"} 233"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_max_offset_ns{from=\"master\","
                              "iface=\"master\",node=\"node-a\","
                              "process=\"ptp4l\"} 233"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_frequency_adjustment_ns{from=\""
                              "master\",iface=\"master\",node=\"node-a\","
                              "process=\"ptp4l\"} 83"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_delay_ns{from=\"master\",iface="
                              "\"master\",node=\"node-a\",process=\"ptp4l\"} "
                              "2270"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_clock_state{iface=\"master\","
                              "node=\"node-a\",process=\"ptp4l\"} 1"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_interface_role{iface=\"port1\","
                              "node=\"node-a\",process=\"ptp4l\"} 1"));
  EXPECT_THAT(text, HasSubstr("# HELP openshift_ptp_clock_state 0 = FREERUN, "
                              "1 = LOCKED, 2 = HOLDOVER\n"));
  EXPECT_THAT(text, HasSubstr("# HELP openshift_ptp_interface_role 0 = "
                              "PASSIVE, 1 = SLAVE, 2 = MASTER, 3 = FAULTY, 4 "
                              "= UNKNOWN, 5 = LISTENING\n"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_threshold{node=\"node-a\","
                              "profile=\"ptp4l.0.config\",threshold=\""
                              "MaxOffsetThreshold\"} 3000"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_threshold{node=\"node-a\","
                              "profile=\"ptp4l.0.config\",threshold=\""
                              "HoldOverTimeout\"} 5"));
  EXPECT_THAT(text, HasSubstr("loop_ptp_lines_total{kind=\"offset\"} 64"));
  EXPECT_THAT(text, HasSubstr("loop_ptp_events_total{resource=\"lock-state\"}"
                              " 5"));
  EXPECT_THAT(text, Not(HasSubstr("=\"\"")));  // never an empty label
}

TEST_F(PtpMetricsTest, DaemonLinesSummariesAndNames) {
  for (const char* line : {
           "ptp4l[10.000]: [ptp4l.1.config:5] port 1 (ens3f0): UNCALIBRATED "
           "to SLAVE on MASTER_CLOCK_SELECTED",
           "ptp4l[11.000]: [ptp4l.1.config:6] master offset -4 s2 freq -26835 "
           "path delay 525",
           "phc2sys[12.000]: [ptp4l.1.config:6] CLOCK_REALTIME phc offset 8 "
           "s2 freq -6990 delay 502",
           "phc2sys[13.000]: [ptp4l.1.config] CLOCK_REALTIME rms 4 max 9 freq "
           "-76829 +/- 0 delay 1085 +/- 0",
           "ts2phc[14.000]: [ts2phc.0.config] ens2f1 master offset 2345 s2 "
           "freq -16642",
           "ptp4l[1000000600]:[ptp4l.1.config] CLOCK_CLASS_CHANGE 248.000000",
           "ptp4l[1757326326]:[ptp4l.1.config] PTP_PROCESS_STATUS:0",
           "ptp4l[1757326327]:[ptp4l.1.config] PTP_PROCESS_STATUS:1",
           "garbage",
       }) {
    monitor_->ProcessLine(line, absl::FromUnixSeconds(1000));
  }
  std::string text = Exposition();
  // ptp4l's servo is named after its slave port.
  EXPECT_THAT(text, HasSubstr("openshift_ptp_offset_ns{from=\"master\",iface="
                              "\"ens3f0\",node=\"node-a\",process=\"ptp4l\"} "
                              "-4"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_interface_role{iface=\"ens3f0\","
                              "node=\"node-a\",process=\"ptp4l\"} 1"));
  // phc2sys: from=phc for samples and summaries (offset = rms, max = max).
  EXPECT_THAT(text, HasSubstr("openshift_ptp_offset_ns{from=\"phc\",iface="
                              "\"CLOCK_REALTIME\",node=\"node-a\",process=\""
                              "phc2sys\"} 4"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_max_offset_ns{from=\"phc\","
                              "iface=\"CLOCK_REALTIME\",node=\"node-a\","
                              "process=\"phc2sys\"} 9"));
  // ts2phc has no delay: 0, as linuxptp-daemon reports it.
  EXPECT_THAT(text, HasSubstr("openshift_ptp_delay_ns{from=\"master\",iface="
                              "\"ens2f1\",node=\"node-a\",process=\"ts2phc\"} "
                              "0"));
  // 2345 is inside +-3000 ns with s2.
  EXPECT_THAT(text, HasSubstr("openshift_ptp_clock_state{iface=\"ens2f1\","
                              "node=\"node-a\",process=\"ts2phc\"} 1"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_clock_class{config=\"ptp4l.1."
                              "config\",node=\"node-a\",process=\"ptp4l\"} "
                              "248"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_process_status{config=\"ptp4l.1"
                              ".config\",node=\"node-a\",process=\"ptp4l\"} "
                              "1"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_process_restart_count{config=\""
                              "ptp4l.1.config\",node=\"node-a\",process=\""
                              "ptp4l\"} 1"));
  EXPECT_THAT(text, HasSubstr("loop_ptp_skipped_lines_total{reason="));
  EXPECT_THAT(text, Not(HasSubstr("=\"\"")));
  // The servo was "master" until its port was named: no stale series left.
  EXPECT_THAT(text, Not(HasSubstr("iface=\"master\"")));
}

// promtool's lint findings, one per line, minus the names cloud-event-proxy
// fixed (listed in loops/ptp/README.md).
TEST_F(PtpMetricsTest, PromtoolLintIsCleanApartFromCompatibilityNames) {
  if (std::system("command -v promtool >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "promtool not installed";
  Replay(kData + "/B-backup-master/slave.log");
  monitor_->ProcessLine(
      "ptp4l[1757326326]:[ptp4l.0.config] PTP_PROCESS_STATUS:1", absl::Now());
  char path[] = "/tmp/lh-ptp-metrics-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  std::string text = Exposition();
  ASSERT_EQ(::write(fd, text.data(), text.size()),
            static_cast<ssize_t>(text.size()));
  ::close(fd);
  FILE* p = ::popen(
      absl::StrCat("promtool check metrics < ", path, " 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;)
    out.append(buf, n);
  ::pclose(p);
  std::remove(path);
  // cloud-event-proxy's names: "_ns" is an abbreviated unit to promtool.
  const char* kKeptNames[] = {
      "openshift_ptp_offset_ns ", "openshift_ptp_max_offset_ns ",
      "openshift_ptp_frequency_adjustment_ns ", "openshift_ptp_delay_ns ",
      "openshift_ptp_process_restart_count "};
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    bool kept = false;
    for (const char* name : kKeptNames)
      kept = kept || absl::StartsWith(line, name);
    EXPECT_TRUE(kept) << "unexpected promtool finding: " << line;
  }
}

}  // namespace
}  // namespace loophost::loops::ptp
