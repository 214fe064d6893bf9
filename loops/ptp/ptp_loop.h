// PtpLoop: the PTP monitor as a loophost loop ("ptp", kind "event_source").
// Start() reads its settings from the loop's environment (ptp_config.h),
// restores its state from LOOP_STATE_DIR, registers the openshift_ptp_*
// metrics and the "ptp.input" / "ptp.state" / "ptp.events" health checks, and
// starts reading log lines (LogInput); it serves loophost.v1.EventSource. The
// same object runs in `loop-ptp` (a child of loophost) or inside loophost.
#pragma once

#include <memory>

#include "loops/sdk/loop.h"

namespace loophost::loops::ptp {

std::unique_ptr<sdk::Loop> MakePtpLoop();

}  // namespace loophost::loops::ptp
