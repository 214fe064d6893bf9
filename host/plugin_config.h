// PluginConfig: what the operator asked for one plugin (from <NAME>_PLUGIN,
// _CMD, _ENV), and DiscoverPlugins(), which reads that from the host's
// environment. Plain values.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "loops/sdk/loop.h"

namespace loophost::host {

using EnvMap = std::map<std::string, std::string>;
using LoopFactory = std::function<std::unique_ptr<sdk::Loop>()>;

struct PluginConfig {
  std::string
      name;  // lower-case, e.g. "ptp"; the registry name and the log's plugin=
  std::string command;             // <NAME>_PLUGIN_CMD; empty = in-process
  LoopFactory in_process_factory;  // set for built-in loops run in-process
  EnvMap
      extra_env;  // <NAME>_PLUGIN_ENV lines plus the host's <NAME>_* variables
};

// A loop compiled into loophost, which may run in-process.
struct BuiltinLoop {
  std::string name;
  std::string description;
  LoopFactory factory;
  // On unless <NAME>_PLUGIN=false (the transport is always there).
  bool enabled_by_default = false;
  // Host variables it gets besides its <NAME>_* ones, e.g. TRANSPORT_HOST.
  std::vector<std::string> host_env = {};
  // Checks the loop's configuration (its <NAME>_* and host_env variables) at
  // the host's start, so that a bad value stops loophost with one line naming
  // it instead of failing every start of the loop. Optional.
  std::function<absl::Status(const EnvMap& env)> check_env = {};
};

// Which plugins the environment enables, sorted by name:
// - built-in loop X: enabled by X_PLUGIN=true (or by default if
// enabled_by_default; X_PLUGIN=false disables it); X_PLUGIN_CMD runs it as a
// child instead.
// - any other X_PLUGIN_CMD=PATH: a third-party plugin "x" (disable with
// X_PLUGIN=false). Errors (InvalidArgument, one line naming the variable): a
// bad boolean, a command that is not an executable file, an unreadable or
// malformed env file, X_PLUGIN=true for an unknown X, a value a built-in
// loop's check_env rejects.
absl::StatusOr<std::vector<PluginConfig>> DiscoverPlugins(
    const EnvMap& host_env, const std::vector<BuiltinLoop>& builtins);

// Reads a KEY=VALUE file (blank lines and # comments skipped). Errors name
// file:line.
absl::StatusOr<EnvMap> ReadEnvFile(const std::string& path);

// The plugin's whole environment (DESIGN section 3): the go-plugin variables,
// the registry's env config, PATH/LANG/TZ from the host, then the plugin's
// extra_env. Nothing else.
struct PluginEnvContext {
  std::string node_name;
  std::string log_level;   // "info", ...
  std::string socket_dir;  // PLUGIN_UNIX_SOCKET_DIR
  std::string state_dir;   // LOOP_STATE_DIR: the plugin's own persistent files
};
EnvMap BuildPluginEnv(const PluginConfig& plugin, const EnvMap& registry_env,
                      const EnvMap& host_env, const PluginEnvContext& context);

// The host process's environment as a map.
EnvMap CurrentEnvironment();

inline constexpr char kPluginCookieKey[] = "LOOPHOST_PLUGIN_COOKIE";
inline constexpr char kPluginCookieValue[] = "d2a4c6e8-loophost-v1";

}  // namespace loophost::host
