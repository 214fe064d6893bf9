// ExplainLineJson / PortRoleForTransition. JSON through nlohmann::ordered_json
// (keys stay in DESIGN 6a's order; invalid UTF-8 is replaced, never thrown).
#include "loops/ptp/explain.h"

#include <nlohmann/json.hpp>

namespace loophost::loops::ptp {

const char* PortRoleForTransition(const PtpLogLine& line) {
  if (line.kind != LineKind::kPortEvent) return "UNKNOWN";
  if (line.event == "FAULT_DETECTED") return "FAULTY";
  const std::string& to = line.to_state;
  if (to.empty()) {
    // A bare event line: "port 1: SYNCHRONIZATION_FAULT".
    return line.event == "SYNCHRONIZATION_FAULT" ? "FAULTY" : "UNKNOWN";
  }
  if (to == "SLAVE") return "SLAVE";
  if (to == "MASTER" || to == "GRAND_MASTER") return "MASTER";
  if (to == "PASSIVE") return "PASSIVE";
  if (to == "FAULTY") return "FAULTY";
  if (to == "LISTENING") return "LISTENING";
  return "UNKNOWN";
}

std::string ExplainLineJson(int line_number, const PtpLogLine& line) {
  nlohmann::ordered_json j;
  j["line"] = line_number;
  j["kind"] = LineKindName(line.kind);
  auto put_string = [&j](const char* key, const std::string& value) {
    if (!value.empty()) j[key] = value;
  };
  auto put_number = [&j](const char* key, const auto& value) {
    if (value.has_value()) j[key] = *value;
  };
  put_string("process", line.process);
  put_string("config", line.config);
  put_string("iface", line.iface);
  put_number("offset_ns", line.offset_ns);
  put_number("max_offset_ns", line.max_offset_ns);
  put_number("freq_adj", line.freq_adj);
  put_number("delay_ns", line.delay_ns);
  put_string("servo", line.servo);
  if (line.holdover) j["holdover"] = true;
  if (line.kind == LineKind::kPortEvent) j["port"] = line.port;
  put_string("from_state", line.from_state);
  put_string("to_state", line.to_state);
  put_string("event", line.event);
  if (line.kind == LineKind::kPortEvent) {
    j["role"] = PortRoleForTransition(line);
  }
  put_number("status", line.status);
  put_number("clock_class", line.clock_class);
  put_string("reason", line.reason);
  return j.dump(-1, ' ', /*ensure_ascii=*/false,
                nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace loophost::loops::ptp
