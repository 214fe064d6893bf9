// libFuzzer target for ParsePtpLogLine and ExplainLineJson: any bytes must
// parse without a crash, sanitizer report or exception, into a result that
// keeps the parser's promises (checked below; a broken promise traps).
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/string_view.h"
#include "loops/ptp/explain.h"
#include "loops/ptp/ptp_log_line.h"
#include "loops/ptp/ptp_log_parser.h"

namespace {

using loophost::loops::ptp::LineKind;
using loophost::loops::ptp::PtpLogLine;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool Same(const PtpLogLine& a, const PtpLogLine& b) {
  return a.kind == b.kind && a.process == b.process && a.config == b.config &&
         a.timestamp_s == b.timestamp_s && a.iface == b.iface &&
         a.from == b.from && a.offset_ns == b.offset_ns &&
         a.max_offset_ns == b.max_offset_ns && a.freq_adj == b.freq_adj &&
         a.delay_ns == b.delay_ns && a.servo == b.servo &&
         a.holdover == b.holdover && a.port == b.port &&
         a.from_state == b.from_state && a.to_state == b.to_state &&
         a.event == b.event && a.status == b.status &&
         a.clock_class == b.clock_class && a.reason == b.reason;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const PtpLogLine line = loophost::loops::ptp::ParsePtpLogLine(input);

  // Reusing an object that held any earlier input gives the same result.
  static PtpLogLine reused;
  loophost::loops::ptp::ParsePtpLogLine(input, "ptp4l.0.config", &reused);
  Check(Same(line, reused));

  // O(line): every string comes from the line (config may be the default).
  for (const std::string* s :
       {&line.process, &line.iface, &line.from, &line.servo, &line.from_state,
        &line.to_state, &line.event}) {
    Check(s->size() <= size);
  }
  Check(line.config.size() <= size || line.config == "ptp4l.0.config");
  Check(line.reason.size() < 64);
  const bool needs_reason =
      line.kind == LineKind::kOther || line.kind == LineKind::kMalformed;
  Check(line.reason.empty() != needs_reason);
  Check(line.port >= 0 && line.port <= 65535);
  Check(!line.clock_class ||
        (*line.clock_class >= 0 && *line.clock_class <= 255));
  Check(!line.status || *line.status == 0 || *line.status == 1);
  if (line.kind == LineKind::kOffset) {
    Check(line.offset_ns && line.freq_adj && line.servo.size() == 2);
  }
  if (line.kind == LineKind::kSummary) {
    Check(line.offset_ns && line.max_offset_ns && line.freq_adj);
  }

  // --explain output is always one valid JSON object.
  const std::string json = loophost::loops::ptp::ExplainLineJson(7, line);
  const auto parsed = nlohmann::json::parse(json, nullptr,
                                            /*allow_exceptions=*/false);
  Check(parsed.is_object() && parsed["line"] == 7);
  Check(json.find('\n') == std::string::npos);
  return 0;
}
