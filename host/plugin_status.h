// A point-in-time view of one supervised plugin, as the operator endpoints and
// loopctl see it. Plain values, copied out of the supervisor under its lock; no
// references into it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace loophost::host {

enum class PluginState {
  kStarting,   // spawned or spawning, handshake/dial/health not yet done
  kServing,    // handshake done and the last health check answered
  kUnhealthy,  // running, but a health check failed or timed out
  kBackoff,    // exited or failed to start; waiting to restart
  kStopped,    // stopped by the operator or at host shutdown
};

const char* PluginStateName(PluginState state);

struct PluginStatus {
  std::string name;     // registry name, e.g. "ptp"
  std::string version;  // from Describe; empty for plain go-plugin plugins
  std::vector<std::string> kinds;
  bool in_process = false;  // served inside the host (no *_PLUGIN_CMD)
  std::string command;      // the executable, empty when in-process
  PluginState state = PluginState::kStarting;
  int pid = 0;  // 0 when not running or in-process
  absl::Time started_at = absl::InfinitePast();  // this generation's start
  uint64_t restarts = 0;
  uint16_t prometheus_port = 0;  // LOOP_PROMETHEUS_PORT; 0 = none
  std::string
      last_error;  // why the last start or generation ended, empty if none
  // Dotted check name -> error ("" = healthy). Always has "<name>" itself
  // (process-level: running and answering health), plus every check the plugin
  // reports.
  std::map<std::string, std::string> checks;
};

// What the operator endpoints need from the host: a consistent list of plugins.
class PluginDirectory {
 public:
  virtual ~PluginDirectory() = default;
  // Sorted by name.
  virtual std::vector<PluginStatus> ListPlugins() const = 0;
};

}  // namespace loophost::host
