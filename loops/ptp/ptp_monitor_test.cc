// PtpMonitor: events in order through the sink, --replay's byte-for-byte
// determinism, the state file across a restart (no repeated edges, the
// current state kept), CurrentState.
#include "loops/ptp/ptp_monitor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "events/cloud_event_json.h"
#include "loops/ptp/replay.h"

namespace loophost::loops::ptp {
namespace {

using ::loophost::testing::IsOk;
using ::loophost::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const std::string kData = LH_PTP_TEST_DATA;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

PtpThresholds Microseconds() {
  PtpThresholds t;
  t.max_offset_ns = 3000;
  t.min_offset_ns = -3000;
  return t;
}

TEST(Replay, IsDeterministicByteForByte) {
  ReplayOptions options{"node-a", Microseconds(), kDefaultConfigName};
  std::string log = ReadFile(kData + "/B-backup-master/slave.log");
  std::istringstream in1(log), in2(log);
  std::ostringstream out1, out2;
  ASSERT_THAT(ReplayLog(in1, options, out1), IsOk());
  ASSERT_THAT(ReplayLog(in2, options, out2), IsOk());
  EXPECT_EQ(out1.str(), out2.str());
  std::vector<std::string> lines =
      absl::StrSplit(out1.str(), '\n', absl::SkipEmpty());
  ASSERT_THAT(lines, SizeIs(10));
  auto first = events::DecodeV2Event(lines[0]);
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(first->source(), "/cluster/node/node-a/sync/ptp-status/lock-state");
  EXPECT_EQ(first->type(), "event.sync.ptp-status.ptp-state-change");
  EXPECT_EQ(first->time_unix_nanos(), 1866393000000);  // the log's own time
  ASSERT_EQ(first->data().values_size(), 2);
  EXPECT_EQ(first->data().values(0).value(), "FREERUN");
  EXPECT_EQ(first->data().values(0).data_type(), "notification");
  EXPECT_EQ(first->data().values(0).value_type(), "enumeration");
  EXPECT_EQ(first->data().values(1).value(), "-620.000");
  EXPECT_EQ(first->data().values(1).data_type(), "metric");
  EXPECT_EQ(first->data().values(1).value_type(), "decimal64.3");
  // Ids differ per event; another node gives other ids.
  EXPECT_NE(lines[0].substr(0, 200), lines[2].substr(0, 200));
  std::istringstream in3(log);
  std::ostringstream out3;
  ReplayOptions other{"node-b", Microseconds(), kDefaultConfigName};
  ASSERT_THAT(ReplayLog(in3, other, out3), IsOk());
  EXPECT_NE(out3.str(), out1.str());
}

TEST(Replay, ExplainsEveryLine) {
  std::istringstream in(ReadFile(kData + "/C-summary-stats/slave.log"));
  std::ostringstream out;
  auto n = ExplainLog(in, kDefaultConfigName, out);
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(*n, 19u);
  std::vector<std::string> lines =
      absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
  ASSERT_THAT(lines, SizeIs(19));
  EXPECT_THAT(lines[7], HasSubstr("\"kind\":\"summary\""));
}

class MonitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/lh-ptpmon-XXXXXX");
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<PtpMonitor> Make() {
    PtpMonitor::Options options;
    options.node = "node-a";
    options.thresholds = Microseconds();
    options.state_path = dir_ + "/state.json";
    return std::make_unique<PtpMonitor>(
        options,
        [this](PtpResource, v1::CloudEvent e) {
          events_.push_back(
              absl::StrCat(e.type(), "=", e.data().values(0).value()));
        },
        nullptr);
  }

  std::string dir_;
  std::vector<std::string> events_;
};

TEST_F(MonitorTest, StateSurvivesARestartWithoutRepeatedEdges) {
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  {
    auto m = Make();
    ASSERT_THAT(m->Restore(), IsOk());
    m->ProcessLine(
        "ptp4l[1883.395]: master offset -249 s2 freq +51 path "
        "delay 2533",
        t0);
    m->ProcessLine("ptp4l[1884.000]:[ptp4l.0.config] CLOCK_CLASS_CHANGE 6", t0);
    m->ProcessLine(
        "ptp4l[1883.395]: port 1: UNCALIBRATED to SLAVE on "
        "MASTER_CLOCK_SELECTED",
        t0);
    EXPECT_EQ(m->persist_error(), "");
  }
  EXPECT_THAT(events_,
              ElementsAre("event.sync.ptp-status.ptp-state-change=LOCKED",
                          "event.sync.sync-status.synchronization-state-"
                          "change=LOCKED",
                          "event.sync.ptp-status.ptp-clock-class-change=6"));
  events_.clear();
  auto m = Make();
  ASSERT_THAT(m->Restore(), IsOk());
  auto lock = m->CurrentState(PtpResource::kLockState);
  ASSERT_THAT(lock, IsOk());
  EXPECT_EQ(lock->data().values(0).value(), "LOCKED");
  EXPECT_EQ(lock->data().values(1).value(), "-249.000");
  EXPECT_EQ(lock->time_unix_nanos(), absl::ToUnixNanos(t0));
  EXPECT_FALSE(lock->id().empty());
  // The same readings again are no edge; the port still counts as SLAVE.
  m->ProcessLine(
      "ptp4l[1885.395]: master offset 48 s2 freq +69 path delay 2431",
      t0 + absl::Seconds(1));
  m->ProcessLine("ptp4l[1886.000]:[ptp4l.0.config] CLOCK_CLASS_CHANGE 6",
                 t0 + absl::Seconds(1));
  EXPECT_THAT(events_, IsEmpty());
  m->ProcessLine(
      "ptp4l[1902.732]: port 1: SLAVE to MASTER on "
      "ANNOUNCE_RECEIPT_TIMEOUT_EXPIRES",
      t0 + absl::Seconds(2));
  EXPECT_THAT(events_,
              ElementsAre("event.sync.ptp-status.ptp-state-change=HOLDOVER",
                          "event.sync.sync-status.synchronization-state-"
                          "change=HOLDOVER"));
  EXPECT_EQ(m->NextDeadline(), t0 + absl::Seconds(7));
  // A restart during the holdover keeps its deadline.
  m.reset();
  events_.clear();
  m = Make();
  ASSERT_THAT(m->Restore(), IsOk());
  EXPECT_EQ(m->NextDeadline(), t0 + absl::Seconds(7));
  m->AdvanceTo(t0 + absl::Seconds(7));
  EXPECT_THAT(events_,
              ElementsAre("event.sync.ptp-status.ptp-state-change=FREERUN",
                          "event.sync.sync-status.synchronization-state-"
                          "change=FREERUN"));
}

TEST_F(MonitorTest, CurrentStateBeforeAnythingIsKnown) {
  auto m = Make();
  auto sync = m->CurrentState(PtpResource::kSyncState);
  ASSERT_THAT(sync, IsOk());
  EXPECT_EQ(sync->source(), "/cluster/node/node-a/sync/sync-status/sync-state");
  ASSERT_EQ(sync->data().values_size(), 1);
  EXPECT_EQ(sync->data().values(0).value(), "FREERUN");
  EXPECT_THAT(m->CurrentState(PtpResource::kClockClass),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(MonitorTest, CorruptStateFileStartsFresh) {
  std::ofstream(dir_ + "/state.json") << "{\"machine\": 42}";
  auto m = Make();
  EXPECT_THAT(m->Restore(), StatusIs(absl::StatusCode::kDataLoss));
  m->ProcessLine("ptp4l[1.000]: master offset 5 s2 freq -1 path delay 100",
                 absl::Now());
  EXPECT_THAT(events_, SizeIs(2));
}

TEST_F(MonitorTest, UnwritableStateDirIsReported) {
  PtpMonitor::Options options;
  options.node = "n";
  options.state_path = dir_ + "/missing/state.json";
  std::string health = "unset";
  options.on_persist_health = [&](const std::string& e) { health = e; };
  PtpMonitor m(
      options, [](PtpResource, v1::CloudEvent) {}, nullptr);
  m.ProcessLine("ptp4l[1.000]: master offset 5 s2 freq -1 path delay 100",
                absl::Now());
  EXPECT_THAT(health, HasSubstr("missing/state.json.tmp"));
  EXPECT_EQ(m.persist_error(), health);
}

}  // namespace
}  // namespace loophost::loops::ptp
