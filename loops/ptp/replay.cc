// Implementation of replay.h.
#include "loops/ptp/replay.h"

#include <string>

#include "events/cloud_event_json.h"
#include "loops/ptp/explain.h"
#include "loops/ptp/ptp_event_factory.h"
#include "loops/ptp/ptp_log_parser.h"
#include "loops/ptp/ptp_monitor.h"

namespace loophost::loops::ptp {

absl::StatusOr<uint64_t> ReplayLog(std::istream& in,
                                   const ReplayOptions& options,
                                   std::ostream& out) {
  uint64_t sequence = 0;
  PtpMonitor::Options monitor_options;
  monitor_options.node = options.node;
  monitor_options.thresholds = options.thresholds;
  monitor_options.default_config = options.config_name;
  PtpMonitor monitor(
      std::move(monitor_options),
      [&](PtpResource, v1::CloudEvent event) {
        ++sequence;
        event.set_id(DeterministicEventId(event, sequence));
        out << events::EncodeV2Event(event) << '\n';
      },
      nullptr);
  std::string line;
  while (std::getline(in, line)) monitor.ReplayLine(line);
  out.flush();
  if (!out) return absl::DataLossError("writing the events failed");
  return sequence;
}

absl::StatusOr<uint64_t> ExplainLog(std::istream& in,
                                    const std::string& config_name,
                                    std::ostream& out) {
  std::string text;
  PtpLogLine line;
  uint64_t n = 0;
  while (std::getline(in, text)) {
    ++n;
    ParsePtpLogLine(text, config_name, &line);
    out << ExplainLineJson(static_cast<int>(n), line) << '\n';
  }
  out.flush();
  if (!out) return absl::DataLossError("writing the explanation failed");
  return n;
}

}  // namespace loophost::loops::ptp
