// ExplainLineJson: the exact `loop-ptp --explain` object for each kind of line,
// and PortRoleForTransition's mapping (issue #3's port roles).
#include "loops/ptp/explain.h"

#include <gtest/gtest.h>

#include <string>

#include "loops/ptp/ptp_log_parser.h"

namespace loophost::loops::ptp {
namespace {

std::string Explain(int n, const char* line) {
  return ExplainLineJson(n, ParsePtpLogLine(line));
}

TEST(ExplainLineJsonTest, OffsetLine) {
  EXPECT_EQ(Explain(12,
                    "ptp4l[1866.393]: master offset       -620 s0 freq "
                    "   +104 path delay      2763"),
            R"({"line":12,"kind":"offset","process":"ptp4l",)"
            R"("config":"ptp4l.0.config","iface":"master","offset_ns":-620,)"
            R"("freq_adj":104,"delay_ns":2763,"servo":"s0"})");
}

TEST(ExplainLineJsonTest, TaggedPhc2sysAndTs2phcHoldover) {
  EXPECT_EQ(Explain(1,
                    "phc2sys[1031604.291]: [ptp4l.1.config:6] "
                    "CLOCK_REALTIME phc offset      -414 s0 freq   +2872 "
                    "delay    551"),
            R"({"line":1,"kind":"offset","process":"phc2sys",)"
            R"("config":"ptp4l.1.config","iface":"CLOCK_REALTIME",)"
            R"("offset_ns":-414,"freq_adj":2872,"delay_ns":551,"servo":"s0"})");
  EXPECT_EQ(Explain(2,
                    "ts2phc[521734.693]: [ts2phc.0.config:6] /dev/ptp6 "
                    "offset      -1 s2 freq      -3972 holdover"),
            R"({"line":2,"kind":"offset","process":"ts2phc",)"
            R"("config":"ts2phc.0.config","iface":"/dev/ptp6",)"
            R"("offset_ns":-1,"freq_adj":-3972,"servo":"s2","holdover":true})");
}

TEST(ExplainLineJsonTest, SummaryLine) {
  EXPECT_EQ(Explain(3,
                    "ptp4l[1978.950]: rms  431 max 1264 freq    +81 +/-   "
                    "0 delay  2434 +/- 125"),
            R"({"line":3,"kind":"summary","process":"ptp4l",)"
            R"("config":"ptp4l.0.config","iface":"master","offset_ns":431,)"
            R"("max_offset_ns":1264,"freq_adj":81,"delay_ns":2434})");
}

TEST(ExplainLineJsonTest, PortEvents) {
  EXPECT_EQ(Explain(4,
                    "ptp4l[1800.976]: port 1: SLAVE to FAULTY on "
                    "FAULT_DETECTED (FT_UNSPECIFIED)"),
            R"({"line":4,"kind":"port_event","process":"ptp4l",)"
            R"("config":"ptp4l.0.config","port":1,"from_state":"SLAVE",)"
            R"("to_state":"FAULTY","event":"FAULT_DETECTED","role":"FAULTY"})");
  EXPECT_EQ(Explain(5,
                    "ptp4l[1031602.492]: [ptp4l.1.config:5] port 1 "
                    "(ens4f1): LISTENING to UNCALIBRATED on RS_SLAVE"),
            R"({"line":5,"kind":"port_event","process":"ptp4l",)"
            R"("config":"ptp4l.1.config","iface":"ens4f1","port":1,)"
            R"("from_state":"LISTENING","to_state":"UNCALIBRATED",)"
            R"("event":"RS_SLAVE","role":"UNKNOWN"})");
}

TEST(ExplainLineJsonTest, StatusClassControl) {
  EXPECT_EQ(Explain(6,
                    "ptp4l[1757326326]:[ptp4l.0.config] "
                    "PTP_PROCESS_STATUS:1"),
            R"({"line":6,"kind":"process_status","process":"ptp4l",)"
            R"("config":"ptp4l.0.config","status":1})");
  EXPECT_EQ(Explain(7,
                    "ptp4l[1.0]:[ptp4l.0.config] CLOCK_CLASS_CHANGE "
                    "165.000000"),
            R"({"line":7,"kind":"clock_class","process":"ptp4l",)"
            R"("config":"ptp4l.0.config","clock_class":165})");
  EXPECT_EQ(Explain(8, "CMD RESTART"),
            R"({"line":8,"kind":"control","event":"RESTART"})");
}

TEST(ExplainLineJsonTest, OtherAndMalformedCarryOnlyTheReason) {
  EXPECT_EQ(Explain(9,
                    "ptp4l[1861.769]: port 1: assuming the grand master "
                    "role"),
            R"({"line":9,"kind":"other","process":"ptp4l",)"
            R"("config":"ptp4l.0.config","reason":"grand master role"})");
  // The offset parsed before freq failed is not reported.
  EXPECT_EQ(Explain(10, "ptp4l[1.0]: master offset -620 s0 freq +1x4"),
            R"({"line":10,"kind":"malformed","process":"ptp4l",)"
            R"("config":"ptp4l.0.config","reason":"freq: not a number"})");
  EXPECT_EQ(Explain(11, "invalid log line"),
            R"({"line":11,"kind":"malformed",)"
            R"("reason":"no process[timestamp]: prefix"})");
}

TEST(ExplainLineJsonTest, AnyBytesGiveValidJson) {
  // Invalid UTF-8 in a config tag and an iface; quotes and control bytes.
  EXPECT_EQ(Explain(1, "ptp4l[1.0]: [p\xff] x"),
            "{\"line\":1,\"kind\":\"other\",\"process\":\"ptp4l\","
            "\"config\":\"p\xef\xbf\xbd\",\"reason\":\"message not "
            "monitored\"}");
  EXPECT_EQ(Explain(2, "ts2phc[1.0]: [c\"\x01] a\xc3 offset 1 s2 freq 1"),
            "{\"line\":2,\"kind\":\"offset\",\"process\":\"ts2phc\","
            "\"config\":\"c\\\"\\u0001\",\"iface\":\"a\xef\xbf\xbd\","
            "\"offset_ns\":1,\"freq_adj\":1,\"servo\":\"s2\"}");
}

TEST(PortRoleForTransitionTest, IssueMapping) {
  struct Case {
    const char* line;
    const char* role;
  };
  const Case kCases[] = {
      {"ptp4l[1.0]: port 1: UNCALIBRATED to SLAVE on MASTER_CLOCK_SELECTED",
       "SLAVE"},
      {"ptp4l[1.0]: port 1: LISTENING to SLAVE", "SLAVE"},
      {"ptp4l[1.0]: port 1: FAULTY to SLAVE", "SLAVE"},
      {"ptp4l[1.0]: port 1: LISTENING to MASTER on "
       "ANNOUNCE_RECEIPT_TIMEOUT_EXPIRES",
       "MASTER"},
      {"ptp4l[1.0]: port 1: LISTENING to GRAND_MASTER on RS_GRAND_MASTER",
       "MASTER"},
      {"ptp4l[1.0]: port 1: MASTER to PASSIVE on RS_PASSIVE", "PASSIVE"},
      {"ptp4l[1.0]: port 1: SLAVE to FAULTY on FAULT_DETECTED "
       "(FT_UNSPECIFIED)",
       "FAULTY"},
      {"ptp4l[1.0]: port 1: LISTENING to FAULTY", "FAULTY"},
      {"ptp4l[1.0]: port 1: FAULT_DETECTED", "FAULTY"},
      {"ptp4l[1.0]: port 1: SYNCHRONIZATION_FAULT", "FAULTY"},
      {"ptp4l[1.0]: port 1: SLAVE to LISTENING", "LISTENING"},
      {"ptp4l[1.0]: port 1: INITIALIZING to LISTENING on INIT_COMPLETE",
       "LISTENING"},
      {"ptp4l[1.0]: port 1: LISTENING to UNCALIBRATED on RS_SLAVE", "UNKNOWN"},
      {"ptp4l[1.0]: port 1: SLAVE to UNCALIBRATED on SYNCHRONIZATION_FAULT",
       "UNKNOWN"},
      {"ptp4l[1.0]: port 1: LISTENING to PRE_MASTER on RS_MASTER", "UNKNOWN"},
      {"ptp4l[1.0]: port 1: FAULTY to DISABLED on DESIGNATED_DISABLED",
       "UNKNOWN"},
      {"ptp4l[1.0]: port 1: INVALID_STATE", "UNKNOWN"},
      {"ptp4l[1.0]: master offset 1 s2 freq 1", "UNKNOWN"},
  };
  for (const Case& c : kCases) {
    EXPECT_STREQ(PortRoleForTransition(ParsePtpLogLine(c.line)), c.role)
        << c.line;
  }
}

}  // namespace
}  // namespace loophost::loops::ptp
