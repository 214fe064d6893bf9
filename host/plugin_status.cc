// PluginStateName (plugin_status.h): the lower-case state names that /plugins,
// /readyz and loopctl show.
#include "host/plugin_status.h"

namespace loophost::host {

const char* PluginStateName(PluginState state) {
  switch (state) {
    case PluginState::kStarting:
      return "starting";
    case PluginState::kServing:
      return "serving";
    case PluginState::kUnhealthy:
      return "unhealthy";
    case PluginState::kBackoff:
      return "backoff";
    case PluginState::kStopped:
      return "stopped";
  }
  return "unknown";
}

}  // namespace loophost::host
