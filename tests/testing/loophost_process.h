// LoophostProcess: the real loophost binary run by an integration test.
//
// Start() runs loophost in a private temp dir with a minimal environment
// (state dir, metrics and REST API on 127.0.0.1:0, TMPDIR, PATH, NODE_NAME)
// plus the caller's variables (e.g. GOGO_PLUGIN_CMD=...), its stderr (the
// host log) in a file, and returns once the "loophost started ...
// metrics=HOST:PORT" line names the operator port. Then:
//
//   auto host = LoophostProcess::Start({.binary = LH_LOOPHOST_BINARY,
//                                       .env = {{"GOGO_PLUGIN_CMD", path}}});
//   ASSERT_THAT(host, IsOk());
//   ASSERT_TRUE((*host)->WaitFor([&] { return (*host)->PluginState("gogo") ==
//                                      "serving"; }, absl::Seconds(20),
//                                "gogo serving"));
//   auto health = (*host)->Get("/health");
//   auto stopped = (*host)->Stop();  // SIGTERM, wait, exit status
//
// The destructor always leaves nothing running: a loophost still running is
// stopped (SIGTERM; if the test has failed or it does not exit within 30 s,
// SIGKILL to its process group) and reaped; every plugin pid the test saw
// through Plugins() that outlives loophost by more than a few seconds is
// SIGKILLed (plugins have a parent-death signal, so that should not happen).
// If the test has failed, the destructor prints the tail of the host log and
// keeps the temp dir for a post-mortem (so does LH_TEST_KEEP_TMP=1).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/testing/child_process.h"

namespace loophost::testing {

struct LoophostOptions {
  // Path of the loophost binary.
  std::string binary;
  // Added to the base environment, overriding it on equal keys. The base:
  // PATH (the test's), TMPDIR=<work>/tmp, LOOPHOST_STATE_DIR=<work>/state,
  // LOOPHOST_METRICS_ADDR=127.0.0.1:0, LOOPHOST_API_ADDR=127.0.0.1:0,
  // NODE_NAME=lh-test-node.
  // "${WORK_DIR}" in a value is replaced with the work dir's path, e.g.
  // {"PTP_LOG_FILE", "${WORK_DIR}/ptp.log"}.
  std::map<std::string, std::string> env;
  // Extra command-line arguments ("${WORK_DIR}" is replaced too).
  std::vector<std::string> args;
  // Files written into the work dir before loophost starts: name -> content
  // ("${WORK_DIR}" is replaced in the content), e.g. a <NAME>_PLUGIN_ENV file.
  // A content starting with "#!" is made executable (mode 0755): a script
  // can serve as a plugin command.
  std::map<std::string, std::string> files;
  // Spawn -> the "loophost started" line.
  absl::Duration start_timeout = absl::Seconds(30);
};

struct HttpResponse {
  int status = 0;
  std::string body;
  std::string content_type;
};

class LoophostProcess {
 public:
  // Fails if loophost exits or logs no "loophost started" line within
  // start_timeout; the error then carries the tail of its log.
  static absl::StatusOr<std::unique_ptr<LoophostProcess>> Start(
      LoophostOptions options);
  LoophostProcess(const LoophostProcess&) = delete;
  LoophostProcess& operator=(const LoophostProcess&) = delete;
  ~LoophostProcess();

  pid_t pid() const { return process_->pid(); }
  // When Start() spawned loophost (just before fork).
  absl::Time spawned_at() const { return spawned_at_; }
  bool running() { return process_->running(); }
  // The operator endpoints' address, from the "loophost started" line.
  const std::string& metrics_host() const { return metrics_host_; }
  int metrics_port() const { return metrics_port_; }
  // The REST API's address, from the same line ("api="); 0 if not logged.
  const std::string& api_host() const { return api_host_; }
  int api_port() const { return api_port_; }
  // The private temp dir, and LOOPHOST_STATE_DIR inside it.
  const std::string& work_dir() const { return work_dir_.path(); }
  std::string state_dir() const { return work_dir_.Join("state"); }
  // A fresh path inside the work dir (for files a test hands to plugins).
  std::string WorkPath(const std::string& name) const {
    return work_dir_.Join(name);
  }

  // The host log (loophost's stderr) so far.
  std::string Log() const;
  const std::string& log_path() const { return log_path_; }
  // Lines of the host log that contain every one of `needles`.
  std::vector<std::string> LogLines(
      const std::vector<std::string>& needles) const;

  // GET http://<metrics address><path> with short timeouts. An error only if
  // no HTTP answer came (any status is returned as is).
  absl::StatusOr<HttpResponse> Get(
      const std::string& path,
      const std::map<std::string, std::string>& headers = {}) const;

  // GET /plugins, parsed (a JSON array). Every pid it shows is remembered so
  // that the destructor can make sure no plugin outlives the test.
  absl::StatusOr<nlohmann::json> Plugins();
  // The /plugins entry named `name`, if listed.
  std::optional<nlohmann::json> Plugin(const std::string& name);
  // Its "state" ("starting", "serving", ...), or "" if not listed / no answer.
  std::string PluginState(const std::string& name);
  // Its pid, or 0.
  pid_t PluginPid(const std::string& name);

  // GET /metrics and the value of the sample `name{labels...}` (the labels
  // given must match; others may be present). nullopt if absent.
  std::optional<double> Metric(
      const std::string& name,
      const std::map<std::string, std::string>& labels);

  // WaitFor (child_process.h) that also gives up at once, with the exit
  // status and the log's tail, if loophost exits meanwhile.
  ::testing::AssertionResult WaitFor(const std::function<bool()>& condition,
                                     absl::Duration timeout,
                                     const std::string& what);

  // SIGTERM to loophost, then wait up to `timeout` for it to exit and reap it.
  // On timeout: SIGKILL to its process group, reap, and DeadlineExceeded.
  absl::StatusOr<ExitStatus> Stop(absl::Duration timeout = absl::Seconds(30));

  // True once every plugin pid seen through Plugins() has exited, waiting up
  // to `timeout` in all.
  ::testing::AssertionResult SeenPluginsExited(absl::Duration timeout);
  // The plugin pids seen through Plugins() (loophost's children when seen).
  std::vector<pid_t> SeenPluginPids() const;

 private:
  LoophostProcess(TempDir work_dir, std::string log_path,
                  std::unique_ptr<ChildProcess> process);
  absl::Status AwaitStartedLine(absl::Duration timeout);
  void RememberPid(pid_t pid);

  TempDir work_dir_;
  std::string log_path_;
  std::unique_ptr<ChildProcess> process_;
  absl::Time spawned_at_;
  std::string metrics_host_;
  int metrics_port_ = 0;
  std::string api_host_;
  int api_port_ = 0;
  std::map<pid_t, ForeignProcess> seen_plugins_;
};

// The value of the first sample in a Prometheus text exposition whose metric
// name is `name` and whose labels include `labels`. nullopt if none.
std::optional<double> FindSample(
    const std::string& exposition, const std::string& name,
    const std::map<std::string, std::string>& labels);

}  // namespace loophost::testing
