// PtpLogLine: one linuxptp log line (ptp4l, phc2sys, ts2phc; raw or
// linuxptp-daemon tagged) as the parser understood it. Plain values; the parser
// fills it, the clock state machine and `loop-ptp --explain` read it. Field
// names follow DESIGN section 6a.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace loophost::loops::ptp {

enum class LineKind {
  kOffset,  // "master offset ...", "CLOCK_REALTIME phc offset ...", ts2phc "...
            // offset ..."
  kSummary,        // "rms N max N freq ... delay ..."
  kPortEvent,      // "port N: A to B on EVENT"
  kProcessStatus,  // "PTP_PROCESS_STATUS:1"
  kClockClass,     // "CLOCK_CLASS_CHANGE 248"
  kControl,        // "CMD RESTART", "CMD LIVE_START" (socket control lines)
  kOther,  // understood as not ours (BMC chatter, selected best master, ...)
  kMalformed,  // looked like ours but did not parse; `reason` says why
};

const char* LineKindName(
    LineKind kind);  // "offset", "summary", ... as in --explain

struct PtpLogLine {
  LineKind kind = LineKind::kOther;
  std::string process;  // "ptp4l", "phc2sys", "ts2phc"
  std::string
      config;  // "ptp4l.0.config"; the input's default when the line has no tag
  double timestamp_s = 0;  // the [1678.977] in the line; 0 if none
  // kOffset / kSummary
  std::string iface;  // "master", "CLOCK_REALTIME", "ens2f1", "/dev/ptp6"
  std::string from;   // "master", "phc", "sys" (the offset's reference)
  std::optional<int64_t> offset_ns;
  std::optional<int64_t> max_offset_ns;  // summary lines
  std::optional<int64_t> freq_adj;
  std::optional<int64_t> delay_ns;
  std::string servo;      // "s0".."s3"; empty for summary lines
  bool holdover = false;  // ts2phc "... holdover"
  // kPortEvent
  int port = 0;  // 0 = management port (ignored by the state machine)
  std::string from_state, to_state,
      event;  // "LISTENING", "UNCALIBRATED", "RS_SLAVE"
  // kProcessStatus
  std::optional<int> status;  // 1 up, 0 down
  // kClockClass
  std::optional<int> clock_class;
  // kMalformed / kOther: why
  std::string reason;
};

}  // namespace loophost::loops::ptp
