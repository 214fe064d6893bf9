// The PTP monitor's resources and event types (DESIGN section 6), shared by the
// PTP loop, the host's REST API and tests. Addresses are built from the node
// name.
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace loophost::events {

// Resource suffixes after "/cluster/node/<node>".
inline constexpr char kLockStateResource[] = "/sync/ptp-status/lock-state";
inline constexpr char kOsClockSyncStateResource[] =
    "/sync/sync-status/os-clock-sync-state";
inline constexpr char kClockClassResource[] = "/sync/ptp-status/clock-class";
inline constexpr char kSyncStateResource[] = "/sync/sync-status/sync-state";

inline constexpr char kLockStateEventType[] =
    "event.sync.ptp-status.ptp-state-change";
inline constexpr char kOsClockSyncStateEventType[] =
    "event.sync.sync-status.os-clock-sync-state-change";
inline constexpr char kClockClassEventType[] =
    "event.sync.ptp-status.ptp-clock-class-change";
inline constexpr char kClockClassEventTypeV1[] =
    "ptp-clock-class-change";  // v1 also accepts it
inline constexpr char kSyncStateEventType[] =
    "event.sync.sync-status.synchronization-state-change";

// "/cluster/node/<node><suffix>"
std::string ResourceAddress(absl::string_view node, absl::string_view suffix);

}  // namespace loophost::events
