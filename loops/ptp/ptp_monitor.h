// PtpMonitor: the PTP monitor's core, shared by the live loop and --replay:
// each log line is parsed, applied to the clock state machine, reflected in
// the metrics, and every edge becomes a CloudEvent handed to the sink, in
// order. With a state path, the machine's state is saved there (atomically)
// whenever it changes and restored at start. Thread-safe: lines come from one
// input thread, CurrentState from gRPC threads.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "loophost/v1/event.pb.h"
#include "loops/ptp/clock_state_machine.h"
#include "loops/ptp/ptp_config.h"
#include "loops/ptp/ptp_event_factory.h"
#include "loops/ptp/ptp_log_line.h"
#include "loops/ptp/ptp_metrics.h"

namespace loophost::loops::ptp {

class PtpMonitor {
 public:
  struct Options {
    std::string node;
    PtpThresholds thresholds;
    std::string default_config = kDefaultConfigName;
    std::string state_path;  // "" = nothing persisted
    // Told the error saving the state whenever it changes ("" = fine again).
    std::function<void(const std::string&)> on_persist_health;
  };
  // Gets each event without an id, in order, with the monitor's lock held:
  // it must not call back into the monitor.
  using EventSink = std::function<void(PtpResource, v1::CloudEvent)>;

  // `metrics` may be null (replay, benchmarks); it must outlive the monitor.
  PtpMonitor(Options options, EventSink sink, PtpMetrics* metrics);

  // Loads the state file, if there is one. An error (unreadable, corrupt)
  // leaves the monitor fresh; the caller logs it.
  absl::Status Restore();

  // Live: applies one line at `now`, firing holdover timers due by then.
  void ProcessLine(absl::string_view line, absl::Time now);
  // The same for the lines of one read, under one lock, metrics pushed once.
  void ProcessLines(const std::vector<absl::string_view>& lines,
                    absl::Time now);
  // Replay: applies one line at the log's own time (its timestamp, never
  // going back; lines the linuxptp-daemon writes itself, in another clock,
  // do not move it).
  void ReplayLine(absl::string_view line);
  // Fires holdover timers due by `now`.
  void AdvanceTo(absl::Time now);
  absl::Time NextDeadline() const;

  // The resource's state as an event with a fresh id (FREERUN while nothing
  // is known; NotFound for a clock class never reported).
  absl::StatusOr<v1::CloudEvent> CurrentState(PtpResource resource) const;
  const PtpEventFactory& factory() const { return factory_; }
  // The last error saving the state, "" when fine (a health check).
  std::string persist_error() const;
  uint64_t lines() const;

 private:
  void Handle(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Emit() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Save() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const PtpEventFactory factory_;
  EventSink sink_;
  PtpMetrics* const metrics_;
  mutable absl::Mutex mu_;
  PtpClockStateMachine machine_ ABSL_GUARDED_BY(mu_);
  PtpLogLine line_ ABSL_GUARDED_BY(mu_);  // reused: no allocation per line
  std::vector<StateChange> changes_ ABSL_GUARDED_BY(mu_);
  absl::Time replay_now_ ABSL_GUARDED_BY(mu_) = absl::UnixEpoch();
  uint64_t saved_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t lines_ ABSL_GUARDED_BY(mu_) = 0;
  std::string persist_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loophost::loops::ptp
