// Parsers for configuration values read from env vars and flags. Each takes the
// variable's name so that an error reads as one line an operator can act on:
//   PTP_HOLDOVER_TIMEOUT_S=abc: not a number
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace loophost {

struct HostPort {
  std::string host;
  uint16_t port = 0;  // 0 = let the kernel pick
};

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;  // inclusive
};

// "true/false/1/0/yes/no/on/off" (any case).
absl::StatusOr<bool> ParseBoolValue(absl::string_view name,
                                    absl::string_view value);
absl::StatusOr<int64_t> ParseIntValue(absl::string_view name,
                                      absl::string_view value, int64_t min,
                                      int64_t max);
// "1.5s", "200ms", "2m" (absl duration syntax); must be > 0.
absl::StatusOr<absl::Duration> ParseDurationValue(absl::string_view name,
                                                  absl::string_view value);
// "host:port", "[v6]:port" or ":port"; port 0..65535.
absl::StatusOr<HostPort> ParseHostPortValue(absl::string_view name,
                                            absl::string_view value);
// "20000-20999"; first <= last, both 1..65535.
absl::StatusOr<PortRange> ParsePortRangeValue(absl::string_view name,
                                              absl::string_view value);

// The value of env var `name`, or `fallback` when it is unset or empty.
std::string GetEnvOr(const char* name, absl::string_view fallback);

}  // namespace loophost
