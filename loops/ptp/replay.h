// The offline tools of `loop-ptp` (DESIGN 6a): --replay prints the CloudEvents
// the monitor would publish for a recorded log, one v2 JSON object per line,
// byte-for-byte the same on every run (times from the log, ids derived from
// content and sequence number); --explain prints how each line was parsed.
// Pure functions of their input; thread-safe.
#pragma once

#include <cstdint>
#include <istream>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "loops/ptp/ptp_config.h"

namespace loophost::loops::ptp {

struct ReplayOptions {
  std::string node;
  PtpThresholds thresholds;
  std::string config_name = kDefaultConfigName;  // of lines without a tag
};

// Returns the number of events written; an error if `out` failed.
absl::StatusOr<uint64_t> ReplayLog(std::istream& in,
                                   const ReplayOptions& options,
                                   std::ostream& out);

// Returns the number of lines explained; an error if `out` failed.
absl::StatusOr<uint64_t> ExplainLog(std::istream& in,
                                    const std::string& config_name,
                                    std::ostream& out);

}  // namespace loophost::loops::ptp
