// PtpMetrics: the openshift_ptp_* metrics of cloud-event-proxy (names, labels
// and HELP texts as it has them) plus the monitor's own loop_ptp_* counters,
// in the loop's Prometheus registry. Updated after every line: the line's
// servo values at once (cached series, no label lookups on the hot path), the
// rest (states, roles, processes, clock classes) only when the state
// machine's epoch moved. No series ever has an empty label. Not thread-safe:
// the PtpMonitor's owner thread calls it (prometheus values themselves are
// atomic, so scrapes run concurrently).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "loops/ptp/clock_state_machine.h"
#include "loops/ptp/ptp_log_line.h"

namespace loophost::loops::ptp {

class PtpMetrics {
 public:
  // Registers every family in `registry` and sets openshift_ptp_threshold for
  // `profile` (the input's config name). Errors (a name already taken) come
  // back as Status.
  static absl::StatusOr<std::unique_ptr<PtpMetrics>> Create(
      prometheus::Registry& registry, std::string node,
      const PtpThresholds& thresholds, std::string profile);

  // Counts the line by kind (and skipped ones by reason), keeps the servo
  // values it carried for Flush(), and resyncs the rest if the machine
  // changed.
  void Update(const PtpLogLine& line, const PtpClockStateMachine& machine);
  // Pushes what Update kept into the exposed series: once per batch of lines
  // rather than per line (a scrape sees the same values, the hot path skips
  // the atomic stores of lines that a later one overwrites).
  void Flush();
  // Resyncs states, roles, processes and clock classes from `machine`
  // (after a restore or a holdover timeout).
  void Sync(const PtpClockStateMachine& machine);

  void CountEvent(PtpResource resource);
  void SetHeldEvents(uint64_t held);
  void CountDroppedEvents(uint64_t dropped);

 private:
  struct ServoSeries {
    std::string iface;  // label value the series were made with
    std::string from;
    prometheus::Gauge* offset = nullptr;
    prometheus::Gauge* max_offset = nullptr;
    prometheus::Gauge* freq = nullptr;
    prometheus::Gauge* delay = nullptr;
    prometheus::Gauge* state = nullptr;
    // Values waiting for Flush().
    bool dirty = false;
    double offset_value = 0, max_offset_value = 0, freq_value = 0,
           delay_value = 0;
  };

  PtpMetrics(prometheus::Registry& registry, std::string node,
             std::string profile);
  ServoSeries& Series(const ServoClock& clock, const std::string& from);
  void DropSeries(ServoSeries& series);
  std::string PortIface(const std::string& config, int port,
                        const PortState& state) const;

  const std::string node_;
  const std::string profile_;
  prometheus::Family<prometheus::Gauge>& offset_;
  prometheus::Family<prometheus::Gauge>& max_offset_;
  prometheus::Family<prometheus::Gauge>& freq_;
  prometheus::Family<prometheus::Gauge>& delay_;
  prometheus::Family<prometheus::Gauge>& clock_state_;
  prometheus::Family<prometheus::Gauge>& clock_class_;
  prometheus::Family<prometheus::Gauge>& interface_role_;
  prometheus::Family<prometheus::Gauge>& process_status_;
  prometheus::Family<prometheus::Counter>& restart_count_;
  prometheus::Family<prometheus::Gauge>& threshold_;
  prometheus::Family<prometheus::Counter>& lines_;
  prometheus::Family<prometheus::Counter>& skipped_;
  prometheus::Family<prometheus::Counter>& events_;
  prometheus::Gauge& held_events_;
  prometheus::Counter& dropped_events_;

  std::array<prometheus::Counter*, 8> lines_by_kind_{};
  std::array<uint64_t, 8> pending_lines_{};
  std::vector<uint32_t> dirty_servos_;
  std::map<std::string, prometheus::Counter*> skipped_by_reason_;
  std::array<prometheus::Counter*, kPtpResourceCount> events_by_resource_{};
  std::vector<ServoSeries> servos_;  // by ServoClock::id
  // Role series by (config, port), with the iface label they carry.
  std::map<std::pair<std::string, int>,
           std::pair<std::string, prometheus::Gauge*>>
      roles_;
  std::map<std::pair<std::string, std::string>, prometheus::Gauge*> statuses_;
  std::map<std::pair<std::string, std::string>,
           std::pair<prometheus::Counter*, uint64_t>>
      restarts_;
  std::map<std::string, prometheus::Gauge*> classes_;
  uint64_t synced_epoch_ = ~uint64_t{0};
};

}  // namespace loophost::loops::ptp
