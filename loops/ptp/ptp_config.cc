// Implementation of ptp_config.h.
#include "loops/ptp/ptp_config.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/env_parse.h"
#include "common/status_macros.h"

namespace loophost::loops::ptp {
namespace {

const std::string* Find(const std::map<std::string, std::string>& env,
                        const char* key) {
  auto it = env.find(key);
  if (it == env.end() || it->second.empty()) return nullptr;
  return &it->second;
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0')
    return "localhost";
  return name;
}

}  // namespace

absl::StatusOr<PtpThresholds> PtpThresholdsFromEnv(
    const std::map<std::string, std::string>& env) {
  PtpThresholds t;
  constexpr int64_t kLimit = int64_t{1} << 53;
  if (const std::string* v = Find(env, "PTP_THRESHOLD_MAX_OFFSET_NS")) {
    LH_ASSIGN_OR_RETURN(
        t.max_offset_ns,
        ParseIntValue("PTP_THRESHOLD_MAX_OFFSET_NS", *v, -kLimit, kLimit));
  }
  if (const std::string* v = Find(env, "PTP_THRESHOLD_MIN_OFFSET_NS")) {
    LH_ASSIGN_OR_RETURN(
        t.min_offset_ns,
        ParseIntValue("PTP_THRESHOLD_MIN_OFFSET_NS", *v, -kLimit, kLimit));
  }
  if (t.min_offset_ns >= t.max_offset_ns) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PTP_THRESHOLD_MIN_OFFSET_NS=", t.min_offset_ns,
        ": must be less than PTP_THRESHOLD_MAX_OFFSET_NS=", t.max_offset_ns));
  }
  if (const std::string* v = Find(env, "PTP_HOLDOVER_TIMEOUT_S")) {
    LH_ASSIGN_OR_RETURN(int64_t seconds,
                        ParseIntValue("PTP_HOLDOVER_TIMEOUT_S", *v, 0, 86400));
    t.holdover_timeout = absl::Seconds(seconds);
  }
  return t;
}

absl::StatusOr<PtpConfig> PtpConfigFromEnv(
    const std::map<std::string, std::string>& env) {
  PtpConfig c;
  LH_ASSIGN_OR_RETURN(c.thresholds, PtpThresholdsFromEnv(env));
  const std::string* node = Find(env, "NODE_NAME");
  c.node_name = node != nullptr ? *node : HostName();
  if (c.node_name.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("NODE_NAME=", c.node_name, ": must not contain '/'"));
  }
  if (const std::string* v = Find(env, "PTP_LOG_SOCKET")) c.log_socket = *v;
  if (const std::string* v = Find(env, "PTP_LOG_FILE")) c.log_file = *v;
  if (const std::string* v = Find(env, "LOOP_STATE_DIR")) c.state_dir = *v;
  return c;
}

}  // namespace loophost::loops::ptp
