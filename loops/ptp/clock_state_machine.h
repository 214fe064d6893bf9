// PtpClockStateMachine: what the PTP monitor believes about the node's clocks,
// driven by parsed log lines and a time the caller passes in (the log's own
// timestamps in --replay, the real clock when live), so it is pure and
// deterministic. It follows every servo (ptp4l's master offset per config,
// ts2phc's clocks, phc2sys's CLOCK_REALTIME), port roles, process states and
// clock classes, and reports the edges of the four published resources
// (lock-state, os-clock-sync-state, clock-class, sync-state). Not thread-safe:
// one owner (PtpMonitor) serialises calls.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "loops/ptp/ptp_config.h"
#include "loops/ptp/ptp_log_line.h"

namespace loophost::loops::ptp {

// Values as in openshift_ptp_clock_state.
enum class SyncState : uint8_t { kFreerun = 0, kLocked = 1, kHoldover = 2 };
const char* SyncStateName(SyncState state);  // "FREERUN", "LOCKED", ...
// FREERUN is worse than HOLDOVER, which is worse than LOCKED.
SyncState WorstOf(SyncState a, SyncState b);

// Values as in openshift_ptp_interface_role.
enum class PortRole : uint8_t {
  kPassive = 0,
  kSlave = 1,
  kMaster = 2,
  kFaulty = 3,
  kUnknown = 4,
  kListening = 5,
};
PortRole PortRoleFromName(absl::string_view name);  // "SLAVE" -> kSlave, ...

enum class PtpResource : uint8_t {
  kLockState = 0,
  kOsClockSyncState = 1,
  kClockClass = 2,
  kSyncState = 3,
};
inline constexpr int kPtpResourceCount = 4;
inline constexpr PtpResource kAllPtpResources[] = {
    PtpResource::kLockState, PtpResource::kOsClockSyncState,
    PtpResource::kClockClass, PtpResource::kSyncState};

// A resource's value as last published (an event went out for it).
struct PublishedState {
  bool known = false;                     // false until the first edge
  SyncState state = SyncState::kFreerun;  // not for kClockClass
  int clock_class = 0;                    // kClockClass only
  bool has_offset = false;  // lock-state, os-clock: the offset behind it
  int64_t offset_ns = 0;
  absl::Time time = absl::UnixEpoch();  // when it changed
};

// One edge: `resource` now has `value`.
struct StateChange {
  PtpResource resource;
  PublishedState value;
  std::string reason;  // for logs: "offset 45 s2 (ptp4l master)", ...
};

// One servo the machine follows.
struct ServoClock {
  uint32_t id = 0;  // index in clocks(); stable
  std::string process, config, iface;
  // iface as metrics and events name it: ptp4l's "master" becomes the name of
  // its config's slave port once a log line named it.
  std::string display_iface;
  bool os_clock = false;  // phc2sys CLOCK_REALTIME: feeds os-clock-sync-state
  bool known = false;
  SyncState state = SyncState::kFreerun;
  bool has_offset = false;
  int64_t offset_ns = 0;
  // A lost slave port's holdover ends (FREERUN) at this time.
  absl::Time holdover_deadline = absl::InfiniteFuture();
  double last_line_ts = 0;  // the largest line timestamp seen for it
};

struct PortState {
  PortRole role = PortRole::kUnknown;
  std::string name;  // "ens4f1" once a line named it
};

struct ProcessState {
  int status = -1;  // -1 unknown, 0 down, 1 up
  uint64_t restarts = 0;
};

// Per config ("ptp4l.0.config", "ts2phc.0.config", ...).
struct ConfigState {
  std::map<int, PortState> ports;                 // port number (>0) -> state
  std::map<std::string, ProcessState> processes;  // "ptp4l" -> ...
  int clock_class = 0;                            // 0 = none reported
};

class PtpClockStateMachine {
 public:
  explicit PtpClockStateMachine(PtpThresholds thresholds);

  // Fires holdover timers due by `now`, then applies `line` at `now` (never
  // earlier than the latest time seen), appending every edge to `*changes`.
  void Apply(const PtpLogLine& line, absl::Time now,
             std::vector<StateChange>* changes);
  // Fires holdover timers due by `now`; each edge carries its deadline as
  // time.
  void AdvanceTo(absl::Time now, std::vector<StateChange>* changes);
  // The earliest pending holdover deadline, InfiniteFuture if none.
  absl::Time NextDeadline() const { return next_deadline_; }

  const PublishedState& published(PtpResource resource) const {
    return published_[static_cast<int>(resource)];
  }
  // The latest offset behind the resource's current state (lock-state,
  // os-clock-sync-state): false if none.
  bool CurrentOffset(PtpResource resource, int64_t* offset_ns) const;

  // For metrics: the servo the last Apply updated (nullptr if none), and a
  // counter bumped whenever anything but an offset changed (states, roles,
  // names, processes, clock classes), so a reader can resync only then.
  const ServoClock* last_clock() const { return last_clock_; }
  uint64_t epoch() const { return epoch_; }
  const std::deque<ServoClock>& clocks() const { return clocks_; }
  const std::map<std::string, ConfigState>& configs() const { return configs_; }
  const PtpThresholds& thresholds() const { return thresholds_; }

  // Persistence: everything above as JSON, and back. Restore replaces the
  // whole state; an error leaves the machine as it was.
  nlohmann::json Snapshot() const;
  absl::Status Restore(const nlohmann::json& snapshot);

 private:
  ServoClock& FindOrAddClock(absl::string_view process,
                             absl::string_view config, absl::string_view iface);
  ConfigState& Config(absl::string_view config);
  void ApplyOffset(const PtpLogLine& line, absl::Time now,
                   std::vector<StateChange>* changes);
  void ApplySummary(const PtpLogLine& line, absl::Time now,
                    std::vector<StateChange>* changes);
  void ApplyPortEvent(const PtpLogLine& line, absl::Time now,
                      std::vector<StateChange>* changes);
  void ApplyProcessStatus(const PtpLogLine& line, absl::Time now,
                          std::vector<StateChange>* changes);
  void ApplyClockClass(const PtpLogLine& line, absl::Time now,
                       std::vector<StateChange>* changes);
  // Sets a servo's state from a reading (servo state + offset).
  void UpdateServo(ServoClock& clock, SyncState reading, int64_t offset_ns,
                   absl::Time now, const std::string& why,
                   std::vector<StateChange>* changes);
  void SetClockState(ServoClock& clock, SyncState state);
  void RecomputeDeadline();
  void UpdateDisplayIface(absl::string_view config);
  // Recomputes the node-level states and appends their edges.
  void Publish(absl::Time now, const std::string& why,
               std::vector<StateChange>* changes);
  bool InRange(int64_t offset_ns) const {
    return thresholds_.min_offset_ns < offset_ns &&
           offset_ns < thresholds_.max_offset_ns;
  }

  PtpThresholds thresholds_;
  std::deque<ServoClock> clocks_;
  absl::flat_hash_map<std::string, uint32_t> clock_index_;
  std::map<std::string, ConfigState> configs_;
  PublishedState published_[kPtpResourceCount];
  absl::Time now_ = absl::InfinitePast();
  absl::Time next_deadline_ = absl::InfiniteFuture();
  ServoClock* last_clock_ = nullptr;
  ServoClock* cached_clock_ = nullptr;  // the last one FindOrAddClock found
  uint64_t epoch_ = 0;
};

}  // namespace loophost::loops::ptp
