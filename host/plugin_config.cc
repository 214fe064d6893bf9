// Implementation of plugin discovery, env files and the plugin environment
// (plugin_config.h).
#include "host/plugin_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/env_parse.h"
#include "common/status_macros.h"

extern char** environ;

namespace loophost::host {
namespace {

constexpr absl::string_view kCmdSuffix = "_PLUGIN_CMD";

std::string Upper(absl::string_view s) { return absl::AsciiStrToUpper(s); }

absl::Status CheckExecutable(const std::string& var, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(var, "=", path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode) || ::access(path.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(var, "=", path, ": not an executable file"));
  }
  return absl::OkStatus();
}

// The host's variables that start with PREFIX_ (other than _PLUGIN,
// _PLUGIN_CMD, _PLUGIN_ENV).
EnvMap PrefixedVariables(const EnvMap& host_env,
                         const std::string& upper_name) {
  EnvMap out;
  const std::string prefix = upper_name + "_";
  for (auto it = host_env.lower_bound(prefix);
       it != host_env.end() && absl::StartsWith(it->first, prefix); ++it) {
    absl::string_view rest = absl::string_view(it->first).substr(prefix.size());
    if (rest == "PLUGIN" || rest == "PLUGIN_CMD" || rest == "PLUGIN_ENV")
      continue;
    out[it->first] = it->second;
  }
  return out;
}

absl::StatusOr<bool> EnabledFlag(const EnvMap& host_env,
                                 const std::string& upper_name, bool fallback) {
  const std::string var = upper_name + "_PLUGIN";
  auto it = host_env.find(var);
  if (it == host_env.end() || it->second.empty()) return fallback;
  return ParseBoolValue(var, it->second);
}

}  // namespace

absl::StatusOr<EnvMap> ReadEnvFile(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", std::strerror(errno)));
  EnvMap out;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    absl::string_view text = absl::StripAsciiWhitespace(line);
    if (text.empty() || text.front() == '#') continue;
    absl::ConsumePrefix(&text, "export ");
    size_t eq = text.find('=');
    absl::string_view key =
        eq == absl::string_view::npos
            ? text
            : absl::StripAsciiWhitespace(text.substr(0, eq));
    bool valid_key = !key.empty() && !absl::ascii_isdigit(key.front());
    for (char c : key) valid_key &= absl::ascii_isalnum(c) || c == '_';
    if (eq == absl::string_view::npos || !valid_key) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", number, ": expected KEY=VALUE"));
    }
    absl::string_view value = text.substr(eq + 1);
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    out[std::string(key)] = std::string(value);
  }
  return out;
}

absl::StatusOr<std::vector<PluginConfig>> DiscoverPlugins(
    const EnvMap& host_env, const std::vector<BuiltinLoop>& builtins) {
  std::map<std::string, PluginConfig> found;
  // Third-party (and child-mode built-in) plugins: every <NAME>_PLUGIN_CMD.
  for (const auto& [var, value] : host_env) {
    if (!absl::EndsWith(var, kCmdSuffix) || value.empty()) continue;
    std::string upper = var.substr(0, var.size() - kCmdSuffix.size());
    if (upper.empty()) continue;
    PluginConfig plugin;
    plugin.name = absl::AsciiStrToLower(upper);
    plugin.command = value;
    found[plugin.name] = std::move(plugin);
  }
  // Built-ins run in-process unless their command is set.
  for (const BuiltinLoop& builtin : builtins) {
    auto it = found.find(builtin.name);
    if (it == found.end()) {
      PluginConfig plugin;
      plugin.name = builtin.name;
      plugin.in_process_factory = builtin.factory;
      found[builtin.name] = std::move(plugin);
    }
  }
  std::vector<PluginConfig> out;
  for (auto& [name, plugin] : found) {
    const std::string upper = Upper(name);
    const BuiltinLoop* builtin = nullptr;
    for (const BuiltinLoop& b : builtins) {
      if (b.name == name) builtin = &b;
    }
    // Built-ins are off unless <NAME>_PLUGIN=true (or on by default if they
    // say so); third-party ones are on when given a command.
    LH_ASSIGN_OR_RETURN(bool enabled,
                        EnabledFlag(host_env, upper,
                                    /*fallback=*/builtin == nullptr ||
                                        builtin->enabled_by_default));
    if (!enabled) continue;
    if (!plugin.command.empty()) {
      LH_RETURN_IF_ERROR(
          CheckExecutable(upper + "_PLUGIN_CMD", plugin.command));
    }
    plugin.extra_env = PrefixedVariables(host_env, upper);
    if (builtin != nullptr) {
      for (const std::string& var : builtin->host_env) {
        if (auto it = host_env.find(var); it != host_env.end()) {
          plugin.extra_env[var] = it->second;
        }
      }
    }
    if (auto env_file = host_env.find(upper + "_PLUGIN_ENV");
        env_file != host_env.end() && !env_file->second.empty()) {
      auto lines = ReadEnvFile(env_file->second);
      if (!lines.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(upper, "_PLUGIN_ENV=", lines.status().message()));
      }
      for (auto& [key, value] : *lines)
        plugin.extra_env[key] = std::move(value);
    }
    if (builtin != nullptr && builtin->check_env) {
      if (absl::Status st = builtin->check_env(plugin.extra_env); !st.ok()) {
        return absl::InvalidArgumentError(st.message());
      }
    }
    out.push_back(std::move(plugin));
  }
  // X_PLUGIN=true for something that is neither built in nor given a command.
  for (const auto& [var, value] : host_env) {
    if (!absl::EndsWith(var, "_PLUGIN")) continue;
    std::string name = absl::AsciiStrToLower(var.substr(0, var.size() - 7));
    if (name.empty() || found.count(name) > 0) continue;
    LH_ASSIGN_OR_RETURN(bool enabled, ParseBoolValue(var, value));
    if (enabled) {
      return absl::InvalidArgumentError(
          absl::StrCat(var, "=", value, ": no built-in loop \"", name,
                       "\"; set ", Upper(name), "_PLUGIN_CMD"));
    }
  }
  return out;
}

EnvMap BuildPluginEnv(const PluginConfig& plugin, const EnvMap& registry_env,
                      const EnvMap& host_env, const PluginEnvContext& context) {
  EnvMap env;
  for (const char* key : {"PATH", "LANG", "TZ"}) {
    if (auto it = host_env.find(key); it != host_env.end())
      env[key] = it->second;
  }
  if (env.find("PATH") == env.end())
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  env[kPluginCookieKey] = kPluginCookieValue;
  env["PLUGIN_PROTOCOL_VERSIONS"] = "1";
  env["PLUGIN_MIN_PORT"] =
      "10000";  // go-plugin's defaults; plugins here use unix sockets
  env["PLUGIN_MAX_PORT"] = "25000";
  env["PLUGIN_UNIX_SOCKET_DIR"] = context.socket_dir;
  // go-plugin before 1.6 ignores PLUGIN_UNIX_SOCKET_DIR and makes its socket in
  // $TMPDIR.
  env["TMPDIR"] = context.socket_dir;
  env["NODE_NAME"] = context.node_name;
  env["LOOP_STATE_DIR"] = context.state_dir;
  env["LOOP_LOG_LEVEL"] = context.log_level;
  for (const auto& [key, value] : registry_env) env[key] = value;
  for (const auto& [key, value] : plugin.extra_env) env[key] = value;
  return env;
}

EnvMap CurrentEnvironment() {
  EnvMap env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view entry(*e);
    size_t eq = entry.find('=');
    if (eq == absl::string_view::npos) continue;
    env[std::string(entry.substr(0, eq))] = std::string(entry.substr(eq + 1));
  }
  return env;
}

}  // namespace loophost::host
