// `loop-ptp --explain` output: how one parsed line was understood, as one JSON
// object (DESIGN 6a), and the port role a port transition implies (the same
// mapping the clock state machine uses). Pure functions; thread-safe.
#pragma once

#include <string>

#include "loops/ptp/ptp_log_line.h"

namespace loophost::loops::ptp {

// One JSON object, no newline, keys in this order, those that do not apply to
// the line's kind left out:
// {"line":N,"kind":...,"process","config","iface","offset_ns","max_offset_ns",
//  "freq_adj","delay_ns","servo","holdover","port","from_state","to_state",
//  "event","role","status","clock_class","reason"}
// ("holdover":true only on a ts2phc `... holdover` line). Bytes that are not
// UTF-8 are replaced with U+FFFD, so any input gives valid JSON.
std::string ExplainLineJson(int line_number, const PtpLogLine& line);

// The port role a kPortEvent implies: "SLAVE", "MASTER" (also GRAND_MASTER),
// "PASSIVE", "FAULTY" (event FAULT_DETECTED, or to FAULTY; a bare
// `port N: FAULT_DETECTED` / `SYNCHRONIZATION_FAULT` too), "LISTENING", else
// "UNKNOWN" (UNCALIBRATED, INITIALIZING, DISABLED, ...). "UNKNOWN" for lines
// that are not port events. Never null; a static string.
const char* PortRoleForTransition(const PtpLogLine& line);

}  // namespace loophost::loops::ptp
