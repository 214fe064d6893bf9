// PtpConfig: the PTP monitor's settings, read from the same env vars the
// operator sets on loophost (DESIGN section 2): NODE_NAME, PTP_LOG_SOCKET,
// PTP_LOG_FILE, PTP_THRESHOLD_*, PTP_HOLDOVER_TIMEOUT_S, plus LOOP_STATE_DIR
// from the host. Plain values; parsing is a pure function.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace loophost::loops::ptp {

inline constexpr char kDefaultLogSocket[] = "/cloud-native/events.sock";
inline constexpr char kDefaultConfigName[] = "ptp4l.0.config";

struct PtpThresholds {
  // LOCKED needs min_offset_ns < offset < max_offset_ns (strict).
  int64_t max_offset_ns = 100;
  int64_t min_offset_ns = -100;
  // A lost slave port holds over this long before FREERUN.
  absl::Duration holdover_timeout = absl::Seconds(5);
};

struct PtpConfig {
  std::string node_name;
  PtpThresholds thresholds;
  // Exactly one input: a file to follow ("-" = stdin) when log_file is set,
  // else the unix stream socket it listens on.
  std::string log_socket = kDefaultLogSocket;
  std::string log_file;
  // The config name of lines without a [tag].
  std::string default_config = kDefaultConfigName;
  // LOOP_STATE_DIR: persisted states and held events. Empty: nothing
  // persisted.
  std::string state_dir;
};

// Reads the variables above from `env`. NODE_NAME falls back to the hostname.
// A bad value is an InvalidArgument error of one line naming the variable,
// the value and why: "PTP_HOLDOVER_TIMEOUT_S=abc: not an integer".
absl::StatusOr<PtpConfig> PtpConfigFromEnv(
    const std::map<std::string, std::string>& env);

// The thresholds alone (what --replay reads).
absl::StatusOr<PtpThresholds> PtpThresholdsFromEnv(
    const std::map<std::string, std::string>& env);

}  // namespace loophost::loops::ptp
