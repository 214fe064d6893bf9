// PtpClockStateMachine tests: the real linuxptp logs (tests/data/ptp, with
// thresholds of a few microseconds since their offsets are software
// timestamping noise), then the cloud-event-proxy corpus rows that apply to
// the state machine (tests/data/ptp/corpus/lines.tsv, verbatim lines) as
// scenario steps, then persistence.
#include "loops/ptp/clock_state_machine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_matchers.h"
#include "loops/ptp/ptp_log_parser.h"

namespace loophost::loops::ptp {
namespace {

using ::loophost::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const char* ResourceName(PtpResource r) {
  switch (r) {
    case PtpResource::kLockState:
      return "lock";
    case PtpResource::kOsClockSyncState:
      return "os";
    case PtpResource::kClockClass:
      return "class";
    case PtpResource::kSyncState:
      return "sync";
  }
  return "?";
}

// "lock=LOCKED@1883.395" / "class=248@..." ; the time as log seconds.
std::string Show(const StateChange& c) {
  std::string value = c.resource == PtpResource::kClockClass
                          ? absl::StrCat(c.value.clock_class)
                          : SyncStateName(c.value.state);
  double seconds = absl::ToDoubleSeconds(c.value.time - absl::UnixEpoch());
  return absl::StrCat(ResourceName(c.resource), "=", value, "@",
                      absl::StrFormat("%.3f", seconds));
}

PtpThresholds Thresholds(int64_t max, int64_t min, int holdover_s) {
  PtpThresholds t;
  t.max_offset_ns = max;
  t.min_offset_ns = min;
  t.holdover_timeout = absl::Seconds(holdover_s);
  return t;
}

// Feeds lines at their own timestamps (as --replay does) and collects edges.
class Driver {
 public:
  explicit Driver(PtpThresholds t) : machine(t) {}

  std::vector<std::string> Feed(const std::vector<std::string>& lines) {
    std::vector<std::string> out;
    for (const std::string& text : lines) {
      ParsePtpLogLine(text, kDefaultConfigName, &line);
      if (line.timestamp_s > 0 && line.kind != LineKind::kProcessStatus &&
          line.kind != LineKind::kClockClass) {
        absl::Time t = absl::FromUnixNanos(
            static_cast<int64_t>(std::llround(line.timestamp_s * 1e9)));
        if (t > now) now = t;
      }
      std::vector<StateChange> changes;
      machine.Apply(line, now, &changes);
      for (const StateChange& c : changes) out.push_back(Show(c));
    }
    return out;
  }
  std::vector<std::string> FeedFile(const std::string& path) {
    std::ifstream in(path);
    EXPECT_TRUE(in) << path;
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return Feed(lines);
  }
  std::vector<std::string> Advance(absl::Time t) {
    std::vector<StateChange> changes;
    machine.AdvanceTo(t, &changes);
    std::vector<std::string> out;
    for (const StateChange& c : changes) out.push_back(Show(c));
    return out;
  }
  SyncState ClockState(const std::string& iface) const {
    for (const ServoClock& c : machine.clocks())
      if (c.iface == iface || c.display_iface == iface) return c.state;
    ADD_FAILURE() << "no clock " << iface;
    return SyncState::kFreerun;
  }
  PortRole Role(const std::string& config, int port) const {
    return machine.configs().at(config).ports.at(port).role;
  }

  PtpClockStateMachine machine;
  PtpLogLine line;
  absl::Time now = absl::UnixEpoch();
};

const std::string kData = LH_PTP_TEST_DATA;

// --- The real logs ---------------------------------------------------------

TEST(RealLogs, BackupMasterLocksHoldsOverFreerunsAndLocksAgain) {
  // Grandmaster SIGKILLed at mono 1898.173: the slave's port goes SLAVE to
  // MASTER at 1902.732 (HOLDOVER), 5 s later FREERUN, the restarted
  // grandmaster brings it back (LOCKED at 1926.735).
  Driver d(Thresholds(3000, -3000, 5));
  EXPECT_THAT(d.FeedFile(kData + "/B-backup-master/slave.log"),
              ElementsAre("lock=FREERUN@1866.393", "sync=FREERUN@1866.393",
                          "lock=LOCKED@1883.395", "sync=LOCKED@1883.395",
                          "lock=HOLDOVER@1902.732", "sync=HOLDOVER@1902.732",
                          "lock=FREERUN@1907.732", "sync=FREERUN@1907.732",
                          "lock=LOCKED@1926.735", "sync=LOCKED@1926.735"));
  EXPECT_EQ(d.Role(kDefaultConfigName, 1), PortRole::kSlave);
  EXPECT_EQ(d.ClockState("master"), SyncState::kLocked);
  // Port 0 (the management port) is not tracked.
  EXPECT_EQ(d.machine.configs().at(kDefaultConfigName).ports.count(0), 0u);
}

TEST(RealLogs, BackupMasterWithALongHoldoverLocksWithoutFreerun) {
  // A LOCKED in-range offset before the timeout ends the holdover.
  Driver d(Thresholds(3000, -3000, 60));
  EXPECT_THAT(d.FeedFile(kData + "/B-backup-master/slave.log"),
              ElementsAre("lock=FREERUN@1866.393", "sync=FREERUN@1866.393",
                          "lock=LOCKED@1883.395", "sync=LOCKED@1883.395",
                          "lock=HOLDOVER@1902.732", "sync=HOLDOVER@1902.732",
                          "lock=LOCKED@1926.735", "sync=LOCKED@1926.735"));
  EXPECT_EQ(d.machine.NextDeadline(), absl::InfiniteFuture());
}

TEST(RealLogs, DefaultThresholdsKeepNoiseOutOfLocked) {
  // With +-100 ns only the rare small s2 offsets are LOCKED: -48 (1885.395),
  // 98 (1889.396), 1
  // (1895.396), 34 (1933.736), 46 (1935.736), 33 (1939.736), 78 (1941.736),
  // -17 (1953.737); each flips back at the next noisy line.
  Driver d(Thresholds(100, -100, 5));
  std::vector<std::string> edges =
      d.FeedFile(kData + "/B-backup-master/slave.log");
  std::vector<std::string> lock;
  for (const std::string& e : edges)
    if (e.rfind("lock=LOCKED", 0) == 0) lock.push_back(e);
  EXPECT_THAT(lock,
              ElementsAre("lock=LOCKED@1885.395", "lock=LOCKED@1889.396",
                          "lock=LOCKED@1895.396", "lock=LOCKED@1933.736",
                          "lock=LOCKED@1935.736", "lock=LOCKED@1939.736",
                          "lock=LOCKED@1941.736", "lock=LOCKED@1953.737"));
}

TEST(RealLogs, ThresholdsAreStrict) {
  Driver d(Thresholds(98, -98, 5));
  EXPECT_THAT(d.Feed({"ptp4l[1889.396]: master offset         98 s2 freq     "
                      "+82 path delay      2005"}),
              ElementsAre("lock=FREERUN@1889.396", "sync=FREERUN@1889.396"));
  EXPECT_THAT(d.Feed({"ptp4l[1890.396]: master offset         97 s2 freq     "
                      "+82 path delay      2005"}),
              ElementsAre("lock=LOCKED@1890.396", "sync=LOCKED@1890.396"));
  EXPECT_THAT(d.Feed({"ptp4l[1891.396]: master offset        -98 s2 freq     "
                      "+82 path delay      2005"}),
              ElementsAre("lock=FREERUN@1891.396", "sync=FREERUN@1891.396"));
}

TEST(RealLogs, SummaryStatsLockOnceTheSlavePortIsSlave) {
  // Only rms lines: in range counts while the port is SLAVE (2003.463 on).
  Driver d(Thresholds(3000, -3000, 5));
  EXPECT_THAT(d.FeedFile(kData + "/C-summary-stats/slave.log"),
              ElementsAre("lock=FREERUN@1978.950", "sync=FREERUN@1978.950",
                          "lock=LOCKED@2006.965", "sync=LOCKED@2006.965"));
}

TEST(RealLogs, MasterLogsPublishNothing) {
  // A grandmaster has ports but no servo: no state to publish.
  Driver d(Thresholds(3000, -3000, 5));
  EXPECT_THAT(d.FeedFile(kData + "/B-backup-master/master.run1.log"),
              IsEmpty());
  EXPECT_THAT(d.FeedFile(kData + "/B-backup-master/master.run2.log"),
              IsEmpty());
  EXPECT_EQ(d.Role(kDefaultConfigName, 1), PortRole::kMaster);
}

// --- cloud-event-proxy corpus rows ------------------------------------------

TEST(CorpusRows, SlaveToFaultyFromFreerunGoesHoldover) {
  // metrics_test.go: "(last state FREERUN): interface_role=3 (FAULTY);
  // events=[ptp-state-change, synchronization-state-change]".
  Driver d(Thresholds(100, -100, 5));
  d.Feed(
      {"ptp4l[4270540.000]: [ptp4l.1.config] master offset 5000 s2 freq "
       "-1000 path delay 100",
       "ptp4l[4270541.000]: [ptp4l.1.config:5] port 1 (ens3f0): "
       "UNCALIBRATED to SLAVE on MASTER_CLOCK_SELECTED"});
  EXPECT_THAT(
      d.Feed({"ptp4l[4270543.688]: [ptp4l.1.config:5] port 1 (ens3f0): SLAVE "
              "to FAULTY on FAULT_DETECTED (FT_UNSPECIFIED)"}),
      ElementsAre("lock=HOLDOVER@4270543.688", "sync=HOLDOVER@4270543.688"));
  EXPECT_EQ(d.Role("ptp4l.1.config", 1), PortRole::kFaulty);
  // The servo is named after its slave port once a line named it.
  EXPECT_EQ(d.ClockState("ens3f0"), SyncState::kHoldover);
}

TEST(CorpusRows, UncalibratedToSlaveAloneSendsNoEvent) {
  // metrics_test.go: "interface_role=1 (SLAVE); events=[] (no event until
  // next sync state)".
  Driver d(Thresholds(100, -100, 5));
  EXPECT_THAT(d.Feed({"ptp4l[4270544.036]: [ptp4l.1.config:5] port 2 "
                      "(ens3f1): UNCALIBRATED to SLAVE on "
                      "MASTER_CLOCK_SELECTED"}),
              IsEmpty());
  EXPECT_EQ(d.Role("ptp4l.1.config", 2), PortRole::kSlave);
}

TEST(CorpusRows, StaleReplayedFaultDoesNotPinHoldover) {
  // metrics_test.go OCPBUGS-85092: a FAULTY port event older than the LOCKED
  // offsets (a replay) must not hold the clock in HOLDOVER.
  Driver d(Thresholds(100, -100, 5));
  EXPECT_THAT(
      d.Feed({"ptp4l[5000000.100]: [ptp4l.1.config] master offset 5 s2 freq "
              "-1000 path delay 100"}),
      ElementsAre("lock=LOCKED@5000000.100", "sync=LOCKED@5000000.100"));
  EXPECT_THAT(
      d.Feed({"ptp4l[4999999.000]: [ptp4l.1.config:4] port 1 (ens3f0): SLAVE "
              "to FAULTY on FAULT_DETECTED (FT_UNSPECIFIED)",
              "ptp4l[5000001.100]: [ptp4l.1.config] master offset 3 s2 freq "
              "-998 path delay 99"}),
      IsEmpty());
  EXPECT_EQ(d.ClockState("master"), SyncState::kLocked);
  EXPECT_EQ(d.machine.NextDeadline(), absl::InfiniteFuture());
}

TEST(CorpusRows, RealFaultThenRecoveryLocksOnTheFirstGoodOffset) {
  // The recovery steps of metrics_test.go (FAULTY to LISTENING, LISTENING to
  // UNCALIBRATED, UNCALIBRATED to SLAVE, then "master offset 3 s2" ->
  // clock_state=1), with their timestamps moved after the fault.
  Driver d(Thresholds(100, -100, 5));
  d.Feed(
      {"ptp4l[9.000]: [ptp4l.1.config] master offset 5 s2 freq -1000 path "
       "delay 100"});
  EXPECT_THAT(
      d.Feed({"ptp4l[9.500]: [ptp4l.1.config:4] port 1 (ens3f0): SLAVE to "
              "FAULTY on FAULT_DETECTED (FT_UNSPECIFIED)",
              "ptp4l[10.000]: [ptp4l.1.config:4] port 1 (ens3f0): FAULTY to "
              "LISTENING on INIT_COMPLETE",
              "ptp4l[10.100]: [ptp4l.1.config:4] port 1 (ens3f0): LISTENING "
              "to UNCALIBRATED on RS_SLAVE",
              "ptp4l[10.200]: [ptp4l.1.config:4] port 1 (ens3f0): "
              "UNCALIBRATED to SLAVE on MASTER_CLOCK_SELECTED",
              "ptp4l[11.000]: [ptp4l.1.config] master offset 3 s2 freq -998 "
              "path delay 99"}),
      ElementsAre("lock=HOLDOVER@9.500", "sync=HOLDOVER@9.500",
                  "lock=LOCKED@11.000", "sync=LOCKED@11.000"));
  EXPECT_EQ(d.Role("ptp4l.1.config", 1), PortRole::kSlave);
}

TEST(CorpusRows, SlaveToListeningFromLockedHoldsOverThenTimesOut) {
  // logparser_test.go: "(slave port, last LOCKED): master -> HOLDOVER (event
  // + holdover timer)".
  Driver d(Thresholds(100, -100, 5));
  d.Feed(
      {"ptp4l[72440.000]: [ptp4l.0.config:5] port 1 (ens2f0): "
       "UNCALIBRATED to SLAVE on MASTER_CLOCK_SELECTED",
       "ptp4l[72444.000]: [ptp4l.0.config] master offset -4 s2 freq -26835 "
       "path delay 525"});
  EXPECT_THAT(
      d.Feed({"ptp4l[72444.514]: [ptp4l.0.config:5] port 1 (ens2f0): "
              "SLAVE to LISTENING"}),
      ElementsAre("lock=HOLDOVER@72444.514", "sync=HOLDOVER@72444.514"));
  EXPECT_EQ(d.machine.NextDeadline(),
            absl::FromUnixMillis(72444514) + absl::Seconds(5));
  EXPECT_THAT(d.Advance(absl::FromUnixMillis(72449513)), IsEmpty());
  EXPECT_THAT(d.Advance(absl::FromUnixMillis(72449514)),
              ElementsAre("lock=FREERUN@72449.514", "sync=FREERUN@72449.514"));
}

TEST(CorpusRows, FaultyToSlaveKeepsHoldoverUntilALockedOffset) {
  // logparser_test.go: "FAULTY to SLAVE ... master stays HOLDOVER (until
  // LOCKED offset in range or holdover timeout)".
  Driver d(Thresholds(100, -100, 5));
  d.Feed(
      {"ptp4l[72440.000]: [ptp4l.0.config] master offset -4 s2 freq -1 "
       "path delay 525",
       "ptp4l[72441.000]: [ptp4l.0.config:5] port 1 (ens2f0): SLAVE to "
       "FAULTY on FAULT_DETECTED (FT_UNSPECIFIED)"});
  EXPECT_THAT(d.Feed({"ptp4l[72444.514]: [ptp4l.0.config:5] port 1 (ens2f0): "
                      "FAULTY to SLAVE",
                      "ptp4l[72444.600]: [ptp4l.0.config] master offset 500 s2 "
                      "freq -1 path delay 525"}),
              IsEmpty());
  EXPECT_EQ(d.ClockState("ens2f0"), SyncState::kHoldover);
  EXPECT_THAT(d.Feed({"ptp4l[72444.700]: [ptp4l.0.config] master offset 5 s2 "
                      "freq -1 path delay 525"}),
              ElementsAre("lock=LOCKED@72444.700", "sync=LOCKED@72444.700"));
}

TEST(CorpusRows, SlaveToPassiveIsNotAHoldover) {
  // logparser_test.go: "SLAVE to PASSIVE -> role PASSIVE" (not in the lost
  // slave list of the issue).
  Driver d(Thresholds(100, -100, 5));
  d.Feed(
      {"ptp4l[5199190.000]: [ptp4l.0.config] master offset 5 s2 freq -1 "
       "path delay 5",
       "ptp4l[5199200.100]: [ptp4l.0.config] port 1: LISTENING to SLAVE"});
  EXPECT_THAT(d.Feed({"ptp4l[5199210.200]: [ptp4l.0.config] port 1: SLAVE to "
                      "PASSIVE"}),
              IsEmpty());
  EXPECT_EQ(d.Role(kDefaultConfigName, 1), PortRole::kPassive);
  EXPECT_THAT(
      d.Feed({"ptp4l[5199220.300]: [ptp4l.0.config] port 1: PASSIVE "
              "to SLAVE",
              "ptp4l[5199220.400]: [ptp4l.0.config] port 1: SLAVE to "
              "MASTER"}),
      ElementsAre("lock=HOLDOVER@5199220.400", "sync=HOLDOVER@5199220.400"));
}

TEST(CorpusRows, BareFaultDetectedOnASlavePortHoldsOver) {
  // ptp4l_parser_test.go: "port 1: FAULT_DETECTED -> role FAULTY;
  // clock_state=HOLDOVER".
  Driver d(Thresholds(100, -100, 5));
  d.Feed(
      {"ptp4l[4268779.000]: [ptp4l.0.config] port 1: UNCALIBRATED to SLAVE "
       "on MASTER",
       "ptp4l[4268779.500]: [ptp4l.0.config] master offset -1 s2 freq -3972 "
       "path delay 89"});
  EXPECT_THAT(
      d.Feed({"ptp4l[4268779.809]: [ptp4l.0.config] port 1: FAULT_DETECTED"}),
      ElementsAre("lock=HOLDOVER@4268779.809", "sync=HOLDOVER@4268779.809"));
  EXPECT_EQ(d.Role(kDefaultConfigName, 1), PortRole::kFaulty);
}

TEST(CorpusRows, Ts2phcOffsetsThresholdsAndHoldover) {
  // metrics_test.go: "ts2phc ens2f0 master offset 0 s2 -> events=[ptp-state-
  // change, synchronization-state-change]", then "ens7f0 master offset 999
  // s0 -> clock_state=0; events=[...]"; ts2phc_parser_test.go: trailing
  // 'holdover' -> HOLDOVER; "offset 5000 outside default +-100 -> FREERUN
  // despite s2".
  Driver d(Thresholds(100, -100, 5));
  EXPECT_THAT(
      d.Feed({"ts2phc[1000000300]: [ts2phc.0.config] ens2f0 master "
              "offset  0 s2 freq -0"}),
      ElementsAre("lock=LOCKED@1000000300.000", "sync=LOCKED@1000000300.000"));
  EXPECT_THAT(d.Feed({"ts2phc[1000000310]: [ts2phc.0.config] ens7f0 master "
                      "offset 999 s0 freq      -0"}),
              ElementsAre("lock=FREERUN@1000000310.000",
                          "sync=FREERUN@1000000310.000"));
  EXPECT_EQ(d.ClockState("ens2f0"), SyncState::kLocked);
  EXPECT_EQ(d.ClockState("ens7f0"), SyncState::kFreerun);

  Driver h(Thresholds(100, -100, 5));
  EXPECT_THAT(
      h.Feed({"ts2phc[521734.693]: [ts2phc.0.config:6] /dev/ptp6 "
              "offset      -1 s2 freq      -3972 holdover"}),
      ElementsAre("lock=HOLDOVER@521734.693", "sync=HOLDOVER@521734.693"));

  Driver o(Thresholds(100, -100, 5));
  EXPECT_THAT(o.Feed({"ts2phc[2000000200]: [ts2phc.0.config] ens2f0 master "
                      "offset 5000 s2 freq -0"}),
              ElementsAre("lock=FREERUN@2000000200.000",
                          "sync=FREERUN@2000000200.000"));
}

TEST(CorpusRows, Phc2sysRealtimeIsOsClockSyncState) {
  // metrics_test.go: "phc2sys CLOCK_REALTIME phc offset -62 s0 ->
  // events=[os-clock-sync-state-change, synchronization-state-change]".
  Driver d(Thresholds(100, -100, 5));
  EXPECT_THAT(
      d.Feed({"phc2sys[1000000700]: [ptp4l.0.config] CLOCK_REALTIME "
              "phc offset       -62 s0 freq  -78368 delay   1100"}),
      ElementsAre("os=FREERUN@1000000700.000", "sync=FREERUN@1000000700.000"));
  // phc2sys_parser_test.go: a summary for a PHC (not CLOCK_REALTIME) is
  // ignored.
  EXPECT_THAT(d.Feed({"phc2sys[5196755.139]: [ptp4l.0.config] ens5f0 rms "
                      "3152778 max 3152778 freq -6083928 +/- 0 delay 2791 "
                      "+/- 0"}),
              IsEmpty());
  EXPECT_EQ(d.machine.clocks().size(), 1u);
}

TEST(CorpusRows, OsClockIsNoBetterThanThePtpClock) {
  // tbc_test.go, O-RAN Table 37 (E3): E1 LOCKED -> LOCKED, HOLDOVER ->
  // HOLDOVER, FREERUN -> FREERUN; "offset 999999 s2" -> FREERUN; "s0" ->
  // FREERUN.
  Driver d(Thresholds(100, -100, 5));
  d.Feed(
      {"ptp4l[3262.000]: [ptp4l.0.config] port 1: UNCALIBRATED to SLAVE on "
       "MASTER_CLOCK_SELECTED",
       "ptp4l[3262.500]: [ptp4l.0.config] master offset -50 s2 freq +500 "
       "path delay 1000"});
  EXPECT_THAT(d.Feed({"phc2sys[3263.065]: [ptp4l.0.config] CLOCK_REALTIME phc "
                      "offset 3 s2 freq -20217 delay 536"}),
              ElementsAre("os=LOCKED@3263.065"));  // sync was LOCKED already
  EXPECT_THAT(
      d.Feed({"ptp4l[3264.000]: [ptp4l.0.config] port 1: SLAVE to FAULTY on "
              "FAULT_DETECTED (FT_UNSPECIFIED)",
              "phc2sys[3264.065]: [ptp4l.0.config] CLOCK_REALTIME phc offset "
              "3 s2 freq -20217 delay 536"}),
      ElementsAre("lock=HOLDOVER@3264.000", "os=HOLDOVER@3264.000",
                  "sync=HOLDOVER@3264.000"));
  EXPECT_THAT(d.Feed({"phc2sys[3270.065]: [ptp4l.0.config] CLOCK_REALTIME phc "
                      "offset 3 s2 freq -20217 delay 536"}),
              ElementsAre("lock=FREERUN@3269.000", "os=FREERUN@3269.000",
                          "sync=FREERUN@3269.000"));
  // PTP LOCKED again; the OS clock's own reading decides.
  EXPECT_THAT(
      d.Feed({"ptp4l[3271.000]: [ptp4l.0.config] master offset -50 s2 freq "
              "+500 path delay 1000",
              "phc2sys[3271.065]: [ptp4l.0.config] CLOCK_REALTIME phc offset "
              "999999 s2 freq -20217 delay 536"}),
      ElementsAre("lock=LOCKED@3271.000", "os=LOCKED@3271.000",
                  "sync=LOCKED@3271.000", "os=FREERUN@3271.065",
                  "sync=FREERUN@3271.065"));
  EXPECT_THAT(d.Feed({"phc2sys[3272.065]: [ptp4l.0.config] CLOCK_REALTIME phc "
                      "offset 3 s0 freq -20217 delay 536",
                      "phc2sys[3273.065]: [ptp4l.0.config] CLOCK_REALTIME phc "
                      "offset 3 s2 freq -20217 delay 536"}),
              ElementsAre("os=LOCKED@3273.065", "sync=LOCKED@3273.065"));
}

TEST(CorpusRows, ClockClassChangesNeverZero) {
  // metrics_test.go: "CLOCK_CLASS_CHANGE 248.000000 -> clock_class=248;
  // events=[ptp-clock-class-change]", then 6.000000; event_test.go: the
  // integer form.
  Driver d(Thresholds(100, -100, 5));
  EXPECT_THAT(d.Feed({"ptp4l[1000000600]:[ptp4l.0.config] CLOCK_CLASS_CHANGE "
                      "248.000000"}),
              ElementsAre("class=248@0.000"));
  EXPECT_THAT(d.Feed({"ptp4l[1000000610]:[ptp4l.0.config] CLOCK_CLASS_CHANGE "
                      "6.000000",
                      "ptp4l[1000000620]:[ptp4l.0.config] CLOCK_CLASS_CHANGE "
                      "6",
                      "ptp4l[1000000630]:[ptp4l.0.config] CLOCK_CLASS_CHANGE "
                      "0"}),
              ElementsAre("class=6@0.000"));
  EXPECT_EQ(d.machine.configs().at("ptp4l.0.config").clock_class, 6);
}

TEST(CorpusRows, ProcessDownIsFreerunAndRestartsAreCounted) {
  // tbc_test.go: "PTP_PROCESS_STATUS:0 -> process_status=0; ... FREERUN;
  // event ptp-state-change"; ntp_test.go: phc2sys down -> CLOCK_REALTIME
  // FREERUN.
  Driver d(Thresholds(100, -100, 5));
  d.Feed(
      {"ptp4l[100.000]: [ptp4l.1.config] master offset 5 s2 freq -1 path "
       "delay 100",
       "phc2sys[100.500]: [ptp4l.1.config] CLOCK_REALTIME phc offset 3 s2 "
       "freq -1 delay 5"});
  EXPECT_THAT(
      d.Feed({"phc2sys[1234.567]: [ptp4l.1.config] PTP_PROCESS_STATUS 0"}),
      ElementsAre("os=FREERUN@100.500", "sync=FREERUN@100.500"));
  EXPECT_THAT(
      d.Feed({"ptp4l[1780430740]:[ptp4l.1.config] PTP_PROCESS_STATUS:0"}),
      ElementsAre("lock=FREERUN@100.500"));
  const ConfigState& config = d.machine.configs().at("ptp4l.1.config");
  EXPECT_EQ(config.processes.at("ptp4l").status, 0);
  d.Feed({"ptp4l[1780430800]:[ptp4l.1.config] PTP_PROCESS_STATUS:1",
          "ptp4l[1780430801]:[ptp4l.1.config] PTP_PROCESS_STATUS:1"});
  EXPECT_EQ(config.processes.at("ptp4l").restarts, 1u);
  EXPECT_EQ(config.processes.at("ptp4l").status, 1);
}

TEST(CorpusRows, MalformedAndIgnoredRowsChangeNothing) {
  Driver d(Thresholds(100, -100, 5));
  EXPECT_THAT(
      d.Feed({"invalid log line", "",
              "ptp4l[6059354.708]: [ptp4l.0.config:6] master offset          "
              "notanint s2 freq  -12447 path delay      1513",
              "phc2sys[6059354.693]: [ptp4l.0.config:6] CLOCK_REALTIME phc "
              "offset         notanint s2 freq  +11015 delay    489",
              "ts2phc[4331812.338] [ptp4l.0.config]: UTC-TAI offset not set "
              "in system! Trying to revert to leapfile",
              "ptp4l[4268779.809]: [ptp4l.0.config] port 1: INVALID_STATE",
              "ptp4l[1031590.265]: [ptp4l.0.config:5] port 0 "
              "(/var/run/ptp4lro): INITIALIZING to LISTENING on INIT_COMPLETE",
              "phc2sys[152918.606]: [phc2sys.2.config:6] port "
              "b49691.fffe.a3f27c-1 changed state",
              "ptp4l[4.000]: [ptp4l.0.config] selected best master clock "
              "001122.fffe.334455"}),
      IsEmpty());
  EXPECT_TRUE(d.machine.clocks().empty());
}

TEST(CorpusRows, ZeroHoldoverTimeoutFreerunsAtOnce) {
  Driver d(Thresholds(100, -100, 0));
  d.Feed(
      {"ptp4l[10.000]: port 1: UNCALIBRATED to SLAVE on "
       "MASTER_CLOCK_SELECTED",
       "ptp4l[11.000]: master offset 5 s2 freq -1 path delay 100"});
  EXPECT_THAT(d.Feed({"ptp4l[12.000]: port 1: SLAVE to FAULTY on "
                      "FAULT_DETECTED (FT_UNSPECIFIED)"}),
              ElementsAre("lock=HOLDOVER@12.000", "sync=HOLDOVER@12.000",
                          "lock=FREERUN@12.000", "sync=FREERUN@12.000"));
}

// --- Persistence ------------------------------------------------------------

TEST(Persistence, SnapshotRestoresStatesRolesAndTheRunningTimer) {
  Driver d(Thresholds(3000, -3000, 5));
  d.Feed({"ptp4l[1883.395]: master offset -249 s2 freq +51 path delay 2533",
          "ptp4l[1883.395]: [ptp4l.0.config:5] port 1 (ens4f1): UNCALIBRATED "
          "to SLAVE on MASTER_CLOCK_SELECTED",
          "ptp4l[1884.000]:[ptp4l.0.config] CLOCK_CLASS_CHANGE 248",
          "ptp4l[1902.732]: port 1: SLAVE to MASTER on "
          "ANNOUNCE_RECEIPT_TIMEOUT_EXPIRES"});
  nlohmann::json snapshot = d.machine.Snapshot();

  Driver r(Thresholds(3000, -3000, 5));
  ASSERT_THAT(r.machine.Restore(snapshot), IsOk());
  EXPECT_EQ(r.machine.Snapshot(), snapshot);
  EXPECT_EQ(r.Role(kDefaultConfigName, 1), PortRole::kMaster);
  EXPECT_EQ(r.ClockState("ens4f1"), SyncState::kHoldover);
  EXPECT_TRUE(r.machine.published(PtpResource::kLockState).known);
  EXPECT_EQ(r.machine.published(PtpResource::kClockClass).clock_class, 248);
  // The same line after the restore is no edge; the timer still runs.
  EXPECT_THAT(r.Feed({"ptp4l[1884.000]:[ptp4l.0.config] CLOCK_CLASS_CHANGE "
                      "248"}),
              IsEmpty());
  EXPECT_THAT(r.Advance(absl::FromUnixMillis(1907732)),
              ElementsAre("lock=FREERUN@1907.732", "sync=FREERUN@1907.732"));
}

TEST(Persistence, RestoreRejectsGarbageAndKeepsTheState) {
  Driver d(Thresholds(100, -100, 5));
  d.Feed({"ptp4l[1.000]: master offset 5 s2 freq -1 path delay 100"});
  nlohmann::json before = d.machine.Snapshot();
  EXPECT_FALSE(d.machine.Restore(nlohmann::json::object()).ok());
  nlohmann::json bad = before;
  bad["clocks"][0]["state"] = 7;
  EXPECT_FALSE(d.machine.Restore(bad).ok());
  EXPECT_EQ(d.machine.Snapshot(), before);
}

}  // namespace
}  // namespace loophost::loops::ptp
