// Interoperability, direction 1: a plugin written with hashicorp/go-plugin
// 1.0.1 (tests/goplugin/src/lhgoplugin/plugin, loophost's cookie, serving only
// what go-plugin serves plus loophost.v1.Echo) runs under the real loophost as
// plugin "gogo" (GOGO_PLUGIN_CMD): launched and healthy, given the contract's
// environment, restarted after SIGKILL, and stopped gracefully through
// GRPCController.Shutdown when loophost gets SIGTERM.
//
// Binaries come from CMake: LH_LOOPHOST_BINARY, LH_GOPLUGIN_PLUGIN.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "tests/testing/loophost_process.h"

namespace loophost::testing {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

constexpr absl::Duration kServingTimeout = absl::Seconds(20);
constexpr char kPlugin[] = "gogo";

// Prints a timing for the test log (ctest -V), and records it in the XML.
void ReportTiming(const std::string& what, absl::Duration d) {
  std::printf("[timing] %s: %.1f ms\n", what.c_str(),
              absl::ToDoubleMilliseconds(d));
  ::testing::Test::RecordProperty(what, absl::FormatDuration(d));
}

class GoPluginUnderLoophostTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LoophostOptions options;
    options.binary = LH_LOOPHOST_BINARY;
    options.env = {
        {"GOGO_PLUGIN_CMD", LH_GOPLUGIN_PLUGIN},
        // Host variables with the plugin's prefix reach the plugin; the Go
        // plugin writes the environment it got to this file.
        {"GOGO_ENV_DUMP", "${WORK_DIR}/gogo-env.txt"},
        // Not the plugin's prefix: must not reach it.
        {"LH_INTEROP_HOST_ONLY", "host-secret"},
        // go-plugin 1.0.1 ignores PLUGIN_UNIX_SOCKET_DIR and puts its socket
        // in $TMPDIR; the plugin's env file keeps it in the work dir.
        {"GOGO_PLUGIN_ENV", "${WORK_DIR}/gogo.env"},
        // Relays go-plugin's debug line "plugin address ... address=...".
        {"LOOPHOST_LOG_LEVEL", "debug"},
    };
    options.files = {
        {"gogo.env",
         "# env file for plugin gogo only\nTMPDIR=${WORK_DIR}/tmp\n"},
    };
    absl::StatusOr<std::unique_ptr<LoophostProcess>> host =
        LoophostProcess::Start(std::move(options));
    ASSERT_THAT(host, IsOk());
    host_ = std::move(*host);
  }

  // Waits until /plugins shows gogo serving with a pid; returns the pid.
  pid_t WaitServing(pid_t not_pid = 0) {
    pid_t pid = 0;
    EXPECT_TRUE(host_->WaitFor(
        [&] {
          std::optional<nlohmann::json> p = host_->Plugin(kPlugin);
          if (!p || p->value("state", "") != "serving") return false;
          pid = p->value("pid", 0);
          return pid > 0 && pid != not_pid;
        },
        kServingTimeout,
        not_pid == 0 ? "gogo serving"
                     : "gogo serving again with a pid other than " +
                           std::to_string(not_pid)));
    return pid;
  }

  std::unique_ptr<LoophostProcess> host_;
};

TEST_F(GoPluginUnderLoophostTest, LaunchedHealthyAndGivenTheContractEnv) {
  const pid_t pid = WaitServing();
  ASSERT_GT(pid, 0);
  ReportTiming("loophost spawned -> /plugins shows gogo serving",
               absl::Now() - host_->spawned_at());

  // The pid is the Go plugin binary.
  std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
  std::string argv0;
  std::getline(cmdline, argv0, '\0');
  EXPECT_EQ(argv0, LH_GOPLUGIN_PLUGIN);

  std::optional<nlohmann::json> p = host_->Plugin(kPlugin);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->value("restarts", -1), 0) << p->dump();
  EXPECT_EQ(p->value("in_process", true), false) << p->dump();
  EXPECT_EQ(p->value("checks", nlohmann::json()),
            nlohmann::json({{kPlugin, ""}}))
      << p->dump();

  // /health: a plain go-plugin plugin's grpc.health status is its health.
  // (The in-process transport starts on its own time: wait for both.)
  absl::StatusOr<HttpResponse> health;
  EXPECT_TRUE(host_->WaitFor(
      [&] {
        health = host_->Get("/health");
        return health.ok() && health->status == 200;
      },
      kServingTimeout, "/health 200"));
  ASSERT_THAT(health, IsOk());
  EXPECT_EQ(health->status, 200) << health->body;
  std::vector<std::string> lines = absl::StrSplit(health->body, '\n');
  EXPECT_THAT(lines, Contains(std::string("ok ") + kPlugin)) << health->body;

  absl::StatusOr<HttpResponse> ready = host_->Get("/readyz");
  ASSERT_THAT(ready, IsOk());
  EXPECT_EQ(ready->status, 200) << ready->body;

  EXPECT_EQ(host_->Metric("loop_plugin_up", {{"plugin", kPlugin}}), 1);
  EXPECT_EQ(host_->Metric("loop_plugin_restarts_total", {{"plugin", kPlugin}}),
            0);

  // The plugin's stderr (hclog JSON) is re-logged by the host with
  // plugin=gogo.
  EXPECT_TRUE(host_->WaitFor(
      [&] {
        return !host_->LogLines({"plugin=gogo", "go-plugin plugin starting"})
                    .empty();
      },
      absl::Seconds(5), "the Go plugin's start line in the host log"));

  // The environment the plugin got (DESIGN.md section 3, item 1).
  const std::string dump_path = host_->WorkPath("gogo-env.txt");
  ASSERT_TRUE(
      host_->WaitFor([&] { return !ReadFileOrEmpty(dump_path).empty(); },
                     absl::Seconds(5), "the plugin's env dump"));
  std::vector<std::string> env =
      absl::StrSplit(ReadFileOrEmpty(dump_path), '\n', absl::SkipEmpty());
  EXPECT_THAT(env, Contains("LOOPHOST_PLUGIN_COOKIE=d2a4c6e8-loophost-v1"));
  EXPECT_THAT(env, Contains("PLUGIN_PROTOCOL_VERSIONS=1"));
  EXPECT_THAT(env, Contains("LOOP_NAME=gogo"));
  EXPECT_THAT(env, Contains("NODE_NAME=lh-test-node"));
  EXPECT_THAT(env, Contains(StartsWith("PLUGIN_UNIX_SOCKET_DIR=")));
  EXPECT_THAT(env, Contains(StartsWith("LOOP_PROMETHEUS_PORT=")));
  EXPECT_THAT(env, Contains(StartsWith("GOGO_ENV_DUMP=")));
  EXPECT_THAT(env, Not(Contains(StartsWith("GOGO_PLUGIN_CMD="))));
  EXPECT_THAT(env, Not(Contains(StartsWith("LH_INTEROP_HOST_ONLY="))));
  EXPECT_THAT(env, Not(Contains(StartsWith("LOOPHOST_STATE_DIR="))));
  // From GOGO_PLUGIN_ENV's file.
  EXPECT_THAT(env, Contains("TMPDIR=" + host_->WorkPath("tmp")));

  // go-plugin's own handshake address (its debug log line, relayed): a socket
  // in that TMPDIR, which loophost accepted although it is not in
  // PLUGIN_UNIX_SOCKET_DIR.
  std::vector<std::string> address =
      host_->LogLines({"plugin=gogo", "plugin address", "network=unix"});
  ASSERT_THAT(address, Not(IsEmpty())) << host_->Log();
  EXPECT_THAT(address[0],
              HasSubstr("address=" + host_->WorkPath("tmp/plugin")));
}

TEST_F(GoPluginUnderLoophostTest, RestartedAfterSigkill) {
  const pid_t first = WaitServing();
  ASSERT_GT(first, 0);
  absl::StatusOr<ForeignProcess> victim = ForeignProcess::Open(first);
  ASSERT_THAT(victim, IsOk());

  const absl::Time t_kill = absl::Now();
  ASSERT_THAT(victim->Signal(SIGKILL), IsOk());
  ASSERT_TRUE(victim->WaitExited(absl::Seconds(5)));

  const pid_t second = WaitServing(first);
  ASSERT_GT(second, 0);
  EXPECT_THAT(host_->SeenPluginPids(),
              ::testing::UnorderedElementsAre(first, second));
  ReportTiming("kill -9 gogo -> serving again (new pid)", absl::Now() - t_kill);

  EXPECT_TRUE(host_->WaitFor(
      [&] {
        return host_->Metric("loop_plugin_restarts_total",
                             {{"plugin", kPlugin}}) == 1;
      },
      absl::Seconds(5), "loop_plugin_restarts_total{plugin=\"gogo\"} 1"));
  std::optional<nlohmann::json> p = host_->Plugin(kPlugin);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->value("restarts", -1), 1) << p->dump();
  EXPECT_EQ(p->value("pid", 0), second) << p->dump();

  absl::StatusOr<HttpResponse> health = host_->Get("/health");
  ASSERT_THAT(health, IsOk());
  EXPECT_EQ(health->status, 200) << health->body;
  EXPECT_EQ(host_->Metric("loop_plugin_up", {{"plugin", kPlugin}}), 1);

  // The host said why: the generation ended by a signal.
  EXPECT_THAT(host_->LogLines({"plugin=gogo", "signal 9"}), Not(IsEmpty()))
      << host_->Log();
}

TEST_F(GoPluginUnderLoophostTest, StoppedGracefullyThroughShutdownOnSigterm) {
  const pid_t pid = WaitServing();
  ASSERT_GT(pid, 0);

  const absl::Time t_stop = absl::Now();
  absl::StatusOr<ExitStatus> stopped = host_->Stop();
  ASSERT_THAT(stopped, IsOk());
  ReportTiming("SIGTERM to loophost -> loophost exited", absl::Now() - t_stop);
  EXPECT_TRUE(stopped->ExitedWith(0)) << stopped->ToString();

  // The plugin exited by itself with code 0: GRPCController.Shutdown stopped
  // go-plugin's server, plugin.Serve returned, main returned. A SIGTERM or
  // SIGKILL would read "killed by signal".
  std::vector<std::string> stop_lines =
      host_->LogLines({"plugin stopped", "plugin=gogo"});
  ASSERT_EQ(stop_lines.size(), 1u) << host_->Log();
  EXPECT_THAT(stop_lines[0], HasSubstr("exited with code 0"));
  // The Go plugin's own word for it, relayed by the host.
  EXPECT_THAT(host_->LogLines({"plugin=gogo", "plugin.Serve returned"}),
              Not(IsEmpty()))
      << host_->Log();
  EXPECT_THAT(host_->SeenPluginPids(), ::testing::ElementsAre(pid));
  EXPECT_TRUE(host_->SeenPluginsExited(absl::Seconds(5)));
}

}  // namespace
}  // namespace loophost::testing
