// ParsePtpLogLine: one linuxptp log line (ptp4l, phc2sys, ts2phc; raw or
// tagged by linuxptp-daemon) -> PtpLogLine. A hand-written scanner, no regex:
// it never throws, never allocates more than O(line), keeps no state (so it is
// thread-safe), and with a reused PtpLogLine allocates nothing per line.
#pragma once

#include "absl/strings/string_view.h"
#include "loops/ptp/ptp_log_line.h"

namespace loophost::loops::ptp {

// Parses one line. Never throws, never crashes, never allocates more than
// O(line). `default_config` is the input's config name, used when the line has
// no [tag]. Thread-safe (no state).
//
// Accepted shape: `process[timestamp]:` + optional `[config]` or
// `[config:severity]` tag + message, spaces after `:` and `]` optional; a
// trailing "\r" or "\n" is ignored. What the fields hold, beyond
// ptp_log_line.h:
//  - kOffset: `iface` is "master" for ptp4l's `master offset`, else the clock
//    named first ("CLOCK_REALTIME", "ens2f1", "/dev/ptp6"); `from` is "phc" or
//    "sys" for phc2sys, else "master". `max_offset_ns` is left unset (the line
//    has none). `delay_ns` only when the line has one.
//  - kSummary: `offset_ns` = rms, `max_offset_ns` = max, `freq_adj` = freq
//    mean, `delay_ns` = delay mean (unset when the line has no delay part);
//    `iface` "master" unless the line names a clock; `from` "master".
//  - kPortEvent: `iface` is the name in `port 1 (ens4f1):`, empty if none.
//    `from_state`/`to_state` are empty for a bare `port 1: FAULT_DETECTED`.
//  - kControl (`CMD RESTART`, `CMD LIVE_START`): `event` holds the command.
//  - kOther / kMalformed: `reason` is one of a fixed, small set of strings
//    (never text copied from the line), so it can label a counter.
//  - A line without a `process[...]:` prefix has empty `process` and `config`.
PtpLogLine ParsePtpLogLine(absl::string_view line,
                           absl::string_view default_config = "ptp4l.0.config");

// Same, into an existing object (reusing its strings' capacity) — the hot path
// for >= 5M lines/s. Every field of `*out` is overwritten.
void ParsePtpLogLine(absl::string_view line, absl::string_view default_config,
                     PtpLogLine* out);

}  // namespace loophost::loops::ptp
