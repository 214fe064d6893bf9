// Re-logging what plugins write on stdout/stderr through the host's logger,
// tagged plugin=<name>. ParsePluginLogLine is the pure part (hclog JSON, or
// plain text with an optional "[LEVEL]" / "LEVEL:" prefix); RelogPluginLine
// parses and logs. Both are thread-safe (no shared state).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/logging.h"

namespace loophost::host {

struct PluginLogLine {
  LogLevel level = LogLevel::kInfo;
  std::string message;
  // Extra hclog keys in key order; non-string values as compact JSON.
  std::vector<std::pair<std::string, std::string>> fields;

  bool operator==(const PluginLogLine&) const = default;
};

// hclog JSON ({"@level","@message","@timestamp", other keys -> fields; the
// timestamp is dropped, "@module" becomes "module"; JSON key order, so the
// "@" keys come first), else plain text: an
// optional leading timestamp token before "[LEVEL]", "[LEVEL]" or "LEVEL:"
// prefixes, else the whole line at INFO. Trailing whitespace is trimmed.
PluginLogLine ParsePluginLogLine(absl::string_view line);

// Logs one plugin line with plugin=<name> (and stream=<stream> unless it is
// "stderr"). Empty lines are dropped.
void RelogPluginLine(absl::string_view plugin, absl::string_view stream,
                     absl::string_view line);

}  // namespace loophost::host
