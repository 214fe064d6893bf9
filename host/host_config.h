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

// The event framework's settings (REST API, routing, delivery, retention).
struct EventConfig {
  HostPort api_addr{"127.0.0.1", 9085};  // LOOPHOST_API_ADDR
  // TRANSPORT_HOST: its scheme chooses the transport plugin, its
  // scheme://host:port is the external base of uriLocation/UriLocation.
  std::string transport_host = "http://localhost:9085";
  std::string transport_plugin = "http";
  std::string external_base = "http://localhost:9085";
  absl::Duration dedup_window = absl::Seconds(1);  // zero: off
  absl::Duration retention_age = absl::Hours(24);
  uint64_t retention_events = 10000;  // per subscription; 0: no limit
  int remove_after_failures = 0;      // 0: never
  absl::Duration backoff_max = absl::Seconds(10);
  size_t delivery_window = 8;  // per subscription, in flight to the transport
};

// The transport a TRANSPORT_HOST value chooses.
struct TransportTarget {
  std::string plugin;         // "http" for http:// and https://
  std::string external_base;  // "http://node:9085" (scheme://host[:port])
};
// InvalidArgument naming TRANSPORT_HOST, the value and why (no scheme, a
// scheme without a transport plugin, no host).
absl::StatusOr<TransportTarget> ParseTransportHost(absl::string_view value);

struct HostConfig {
  std::string node_name;
  HostPort metrics_addr{"127.0.0.1", 9091};
  std::string state_dir = "./loophost-state";
  LogLevel log_level = LogLevel::kInfo;
  PortRange prometheus_ports{20000, 20999};
  SupervisorOptions supervisor;
  EventConfig events;
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
