// loop-ptp: the PTP monitor (loops/ptp) as a loophost plugin, and its offline
// tools for operators (DESIGN 6a):
//   loop-ptp --replay FILE [--node NAME] [--config-name ptp4l.0.config]
//   loop-ptp --explain FILE
// Without --replay/--explain it is the plugin (sdk::ServeLoop).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <map>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "loops/ptp/ptp_config.h"
#include "loops/ptp/ptp_loop.h"
#include "loops/ptp/replay.h"
#include "loops/sdk/serve.h"

extern char** environ;

namespace {

std::map<std::string, std::string> Environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq != std::string::npos)
      env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return env;
}

}  // namespace

int main(int argc, char** argv) {
  namespace ptp = loophost::loops::ptp;
  CLI::App app{
      "loop-ptp: the PTP monitor loop. Run by loophost as a plugin "
      "(PTP_PLUGIN_CMD); by hand, replays or explains a recorded linuxptp "
      "log. Thresholds come from PTP_THRESHOLD_MAX_OFFSET_NS, "
      "PTP_THRESHOLD_MIN_OFFSET_NS and PTP_HOLDOVER_TIMEOUT_S."};
  std::string replay, explain, node, config_name = ptp::kDefaultConfigName;
  auto* replay_opt =
      app.add_option("--replay", replay,
                     "print the events a recorded log gives, as JSON lines");
  auto* explain_opt = app.add_option(
      "--explain", explain, "print how each line of a log is understood");
  replay_opt->excludes(explain_opt);
  app.add_option("--node", node,
                 "node name in resource addresses "
                 "(default: NODE_NAME, else the hostname)");
  app.add_option("--config-name", config_name,
                 "config name of lines without a [tag]");
  app.add_flag_callback("--version", [] {
    std::cout << "loop-ptp " << LOOPHOST_VERSION << "\n";
    std::exit(0);
  });
  CLI11_PARSE(app, argc, argv);
  if (replay.empty() && explain.empty()) {
    return loophost::sdk::ServeLoop(ptp::MakePtpLoop());
  }
  loophost::SetMinLogLevel(loophost::LogLevel::kWarn);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const std::string& path = replay.empty() ? explain : replay;
  std::ifstream in(path);
  if (!in) {
    std::cerr << "loop-ptp: " << path << ": cannot read\n";
    return 1;
  }
  std::ios::sync_with_stdio(false);
  if (!explain.empty()) {
    return ptp::ExplainLog(in, config_name, std::cout).ok() ? 0 : 1;
  }
  std::map<std::string, std::string> env = Environment();
  if (!node.empty()) env["NODE_NAME"] = node;
  absl::StatusOr<ptp::PtpConfig> config = ptp::PtpConfigFromEnv(env);
  if (!config.ok()) {
    std::cerr << "loop-ptp: " << config.status().message() << "\n";
    return 2;
  }
  ptp::ReplayOptions options{config->node_name, config->thresholds,
                             config_name};
  return ptp::ReplayLog(in, options, std::cout).ok() ? 0 : 1;
}
