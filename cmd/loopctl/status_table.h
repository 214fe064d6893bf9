// What loopctl prints: the operator endpoint's GET /plugins JSON parsed into
// rows, and the `status` and `plugins` tables made from them. Pure functions on
// values, kept out of main() so that they can be unit-tested;
// thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace loophost::loopctl {

// One element of GET /plugins (see host/operator_server.cc).
struct PluginRow {
  std::string name;
  std::string version;
  std::vector<std::string> kinds;
  bool in_process = false;
  std::string command;
  std::string state;  // starting|serving|unhealthy|backoff|stopped
  int64_t pid = 0;
  std::optional<int64_t> uptime_seconds;  // unset when not running
  uint64_t restarts = 0;
  uint16_t prometheus_port = 0;
  std::string last_error;
  std::map<std::string, std::string> checks;  // name -> error, "" = healthy
};

// Parses the body of GET /plugins. Fields other than `name` may be missing.
absl::StatusOr<std::vector<PluginRow>> ParsePluginList(absl::string_view json);

// "-", "42s", "5m03s", "2h05m", "3d04h".
std::string FormatUptime(std::optional<int64_t> seconds);

// "ok", "-" (no checks), or "<n> failing: <first failing check>: <its error>",
// shortened.
std::string HealthSummary(const PluginRow& row);

// PLUGIN PID STATE UPTIME RESTARTS HEALTH
std::string FormatStatusTable(const std::vector<PluginRow>& rows);

// PLUGIN VERSION KINDS PORT MODE (mode last: a child's command can be long)
std::string FormatPluginsTable(const std::vector<PluginRow>& rows);

}  // namespace loophost::loopctl
