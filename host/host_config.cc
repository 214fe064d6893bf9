// Implementation of ParseHostConfig (host_config.h) with CLI11, whose options
// read their env equivalents, so a flag and its variable always mean the same
// thing.
#include "host/host_config.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace loophost::host {
namespace {

std::string Hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0')
    return "localhost";
  return name;
}

std::string PluginHelp(const std::vector<BuiltinLoop>& builtins) {
  std::string text =
      "\nPlugins (environment only):\n"
      "  <NAME>_PLUGIN_CMD=PATH   run PATH as plugin <name> (a child process)\n"
      "  <NAME>_PLUGIN_ENV=FILE   KEY=VALUE lines added to that plugin's "
      "environment\n"
      "  <NAME>_PLUGIN=false      disable it; for a built-in loop, =true "
      "enables it\n"
      "  <NAME>_*                 other variables with the prefix reach that "
      "plugin only\n"
      "Built-in loops (in-process unless <NAME>_PLUGIN_CMD is set):\n";
  for (const BuiltinLoop& b : builtins)
    absl::StrAppend(&text, "  ", b.name, "  ", b.description, "\n");
  absl::StrAppend(&text,
                  "\nEndpoints on the metrics address: /metrics /discovery "
                  "/plugins/<name>/metrics\n"
                  "/plugins /health /healthz /readyz. SIGTERM stops every "
                  "plugin gracefully.\n"
                  "REST API on the API address: /api/ocloudNotifications/v1/ "
                  "and /v2/ (health,\npublishers, subscriptions, "
                  "<resource>/CurrentState).\n");
  return text;
}

}  // namespace

absl::StatusOr<TransportTarget> ParseTransportHost(absl::string_view value) {
  auto invalid = [value](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("TRANSPORT_HOST=", value, ": ", why));
  };
  const size_t sep = value.find("://");
  if (sep == absl::string_view::npos || sep == 0) {
    return invalid("expected a URL such as http://localhost:9085");
  }
  const std::string scheme = absl::AsciiStrToLower(value.substr(0, sep));
  if (scheme != "http" && scheme != "https") {
    return invalid(absl::StrCat("scheme \"", scheme,
                                "\" has no transport plugin (use http or "
                                "https)"));
  }
  absl::string_view rest = value.substr(sep + 3);
  absl::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.empty() || authority.front() == ':') {
    return invalid("no host");
  }
  return TransportTarget{"http", absl::StrCat(scheme, "://", authority)};
}

ParsedCommandLine ParseHostConfig(int argc, char** argv, const EnvMap& env,
                                  const std::vector<BuiltinLoop>& builtins) {
  ParsedCommandLine out;
  CLI::App app{
      "loophost: runs node telemetry plugins (loops) as supervised child "
      "processes"};
  app.footer(PluginHelp(builtins));
  app.get_formatter()->column_width(40);

  std::string node_name = Hostname();
  std::string metrics_addr = "127.0.0.1:9091";
  std::string state_dir = "./loophost-state";
  std::string log_level = "info";
  std::string ports = "20000-20999";
  std::string start_timeout = "5s", health_interval = "1s",
              health_deadline = "1s", stop_grace = "2s";
  std::string api_addr = "127.0.0.1:9085";
  std::string transport_host = "http://localhost:9085";
  std::string dedup_window = "1s", retention_age = "24h",
              retention_events = "10000", remove_after = "0",
              backoff_max = "10s", delivery_window = "8";
  bool version = false;

  // Values are read as strings and validated below, so errors name the
  // variable.
  struct Option {
    const char* flag;
    const char* env;
    std::string* value;
    const char* help;
  };
  const Option options[] = {
      {"--node-name", "NODE_NAME", &node_name,
       "node name in resource addresses (default: hostname)"},
      {"--metrics-addr", "LOOPHOST_METRICS_ADDR", &metrics_addr,
       "metrics and health listen address"},
      {"--state-dir", "LOOPHOST_STATE_DIR", &state_dir,
       "database and plugin sockets"},
      {"--log-level", "LOOPHOST_LOG_LEVEL", &log_level,
       "trace, debug, info, warn or error"},
      {"--prometheus-ports", "LOOPHOST_PROMETHEUS_PORTS", &ports,
       "range plugins' metrics ports come from"},
      {"--start-timeout", "LOOPHOST_START_TIMEOUT", &start_timeout,
       "spawn to serving, per plugin start"},
      {"--health-interval", "LOOPHOST_HEALTH_INTERVAL", &health_interval,
       "time between liveness checks"},
      {"--health-deadline", "LOOPHOST_HEALTH_DEADLINE", &health_deadline,
       "deadline of one liveness check"},
      {"--stop-grace", "LOOPHOST_STOP_GRACE", &stop_grace,
       "Shutdown/SIGTERM to SIGKILL"},
      {"--api-addr", "LOOPHOST_API_ADDR", &api_addr,
       "O-Cloud notification REST API listen address"},
      {"--transport-host", "TRANSPORT_HOST", &transport_host,
       "transport URL: scheme picks the plugin, host:port goes into "
       "uriLocation"},
      {"--dedup-window", "LOOPHOST_DEDUP_WINDOW", &dedup_window,
       "identical events inside it are coalesced (0: off)"},
      {"--retention-max-age", "LOOPHOST_RETENTION_MAX_AGE", &retention_age,
       "undelivered events older than this are dropped"},
      {"--retention-max-events", "LOOPHOST_RETENTION_MAX_EVENTS",
       &retention_events,
       "undelivered events kept per subscription (0: no limit)"},
      {"--remove-after-failures", "LOOPHOST_REMOVE_AFTER_FAILURES",
       &remove_after,
       "remove a subscription after N connection failures in a row (0: "
       "never)"},
      {"--delivery-backoff-max", "LOOPHOST_DELIVERY_BACKOFF_MAX", &backoff_max,
       "longest wait between delivery retries"},
      {"--delivery-window", "LOOPHOST_DELIVERY_WINDOW", &delivery_window,
       "deliveries handed to the transport per subscriber at a time (posted "
       "one after another, in order)"},
  };
  for (const Option& o : options) {
    app.add_option(o.flag, *o.value, o.help)
        ->envname(o.env)
        ->capture_default_str()
        ->type_name("");
  }
  app.add_flag("--version", version, "print the version and exit");

  // envname() values come from the process environment, which `env` is a copy
  // of.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::ostringstream out_stream, err_stream;
    out.exit_code = app.exit(e, out_stream, err_stream) == 0 ? 0 : 2;
    out.output = out.exit_code == 0 ? out_stream.str() : err_stream.str();
    if (out.exit_code != 0 && out.output.empty())
      out.output = std::string(e.what()) + "\n";
    return out;
  }
  if (version) {
    out.output = "loophost " LOOPHOST_VERSION "\n";
    return out;
  }

  auto fail = [&out](const absl::Status& status) {
    out.exit_code = 2;
    out.output = absl::StrCat("loophost: ", status.message(), "\n");
    return out;
  };
  HostConfig& c = out.config;
  c.node_name = node_name;
  c.state_dir = state_dir;
  if (c.node_name.empty())
    return fail(absl::InvalidArgumentError("NODE_NAME is empty"));
  if (c.state_dir.empty())
    return fail(absl::InvalidArgumentError("LOOPHOST_STATE_DIR is empty"));
  if (!ParseLogLevel(log_level, &c.log_level)) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("LOOPHOST_LOG_LEVEL=", log_level,
                     ": use trace, debug, info, warn or error")));
  }
  auto addr = ParseHostPortValue("LOOPHOST_METRICS_ADDR", metrics_addr);
  if (!addr.ok()) return fail(addr.status());
  c.metrics_addr = *addr;
  auto range = ParsePortRangeValue("LOOPHOST_PROMETHEUS_PORTS", ports);
  if (!range.ok()) return fail(range.status());
  c.prometheus_ports = *range;
  struct DurationOption {
    const char* env;
    const std::string& value;
    absl::Duration* target;
  };
  const DurationOption durations[] = {
      {"LOOPHOST_START_TIMEOUT", start_timeout, &c.supervisor.start_timeout},
      {"LOOPHOST_HEALTH_INTERVAL", health_interval,
       &c.supervisor.health_interval},
      {"LOOPHOST_HEALTH_DEADLINE", health_deadline,
       &c.supervisor.health_deadline},
      {"LOOPHOST_STOP_GRACE", stop_grace, &c.supervisor.stop_grace},
  };
  for (const DurationOption& d : durations) {
    auto parsed = ParseDurationValue(d.env, d.value);
    if (!parsed.ok()) return fail(parsed.status());
    *d.target = *parsed;
  }
  EventConfig& e = c.events;
  auto api = ParseHostPortValue("LOOPHOST_API_ADDR", api_addr);
  if (!api.ok()) return fail(api.status());
  e.api_addr = *api;
  auto transport = ParseTransportHost(transport_host);
  if (!transport.ok()) return fail(transport.status());
  e.transport_host = transport_host;
  e.transport_plugin = transport->plugin;
  e.external_base = transport->external_base;
  if (absl::StripAsciiWhitespace(dedup_window) == "0") {
    e.dedup_window = absl::ZeroDuration();
  } else {
    auto parsed = ParseDurationValue("LOOPHOST_DEDUP_WINDOW", dedup_window);
    if (!parsed.ok()) return fail(parsed.status());
    e.dedup_window = *parsed;
  }
  auto age = ParseDurationValue("LOOPHOST_RETENTION_MAX_AGE", retention_age);
  if (!age.ok()) return fail(age.status());
  e.retention_age = *age;
  auto backoff =
      ParseDurationValue("LOOPHOST_DELIVERY_BACKOFF_MAX", backoff_max);
  if (!backoff.ok()) return fail(backoff.status());
  e.backoff_max = *backoff;
  auto events_kept = ParseIntValue("LOOPHOST_RETENTION_MAX_EVENTS",
                                   retention_events, 0, int64_t{1} << 40);
  if (!events_kept.ok()) return fail(events_kept.status());
  e.retention_events = static_cast<uint64_t>(*events_kept);
  auto failures =
      ParseIntValue("LOOPHOST_REMOVE_AFTER_FAILURES", remove_after, 0, 1000000);
  if (!failures.ok()) return fail(failures.status());
  e.remove_after_failures = static_cast<int>(*failures);
  auto window =
      ParseIntValue("LOOPHOST_DELIVERY_WINDOW", delivery_window, 1, 1024);
  if (!window.ok()) return fail(window.status());
  e.delivery_window = static_cast<size_t>(*window);

  auto plugins = DiscoverPlugins(env, builtins);
  if (!plugins.ok()) return fail(plugins.status());
  c.plugins = std::move(*plugins);
  out.run = true;
  return out;
}

}  // namespace loophost::host
