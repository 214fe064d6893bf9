// HostConfig: everything loophost is told at startup, from flags and their env
// equivalents (DESIGN section 2) plus the plugins the environment enables.
// ParseHostConfig() validates every value; an error is one line naming the
// variable, the value and why.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/env_parse.h"
#include "common/logging.h"
#include "host/plugin_config.h"
#include "host/plugin_supervisor.h"

namespace loophost::host {

struct HostConfig {
  std::string node_name;
  HostPort metrics_addr{"127.0.0.1", 9091};
  std::string state_dir = "./loophost-state";
  LogLevel log_level = LogLevel::kInfo;
  PortRange prometheus_ports{20000, 20999};
  SupervisorOptions supervisor;
  std::vector<PluginConfig> plugins;
};

// The outcome of reading the command line: a config to run, or text to print
// and an exit code (--help and --version: 0 on stdout; a bad flag or value: 2
// on stderr).
struct ParsedCommandLine {
  bool run = false;
  HostConfig config;
  int exit_code = 0;
  std::string output;
};

ParsedCommandLine ParseHostConfig(int argc, char** argv, const EnvMap& env,
                                  const std::vector<BuiltinLoop>& builtins);

}  // namespace loophost::host
