// Plugins misbehaving under the real loophost: killed with SIGKILL, frozen with
// SIGSTOP, junk on stdout before the handshake, no handshake at all, 100 MB on
// stderr. Each test runs its own loophost (metrics on port 0, private temp dir)
// with loop-example as plugin "echo", sometimes behind a small /bin/sh wrapper
// that adds the misbehaviour.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "tests/testing/loophost_process.h"

namespace loophost::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(20);

// VmRSS of `pid` in kB, 0 if unreadable.
long VmRssKb(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    long kb = 0;
    if (absl::StartsWith(line, "VmRSS:") &&
        absl::SimpleAtoi(
            absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)), &kb)) {
      return kb;
    }
  }
  return 0;
}

class PluginFaultsTest : public ::testing::Test {
 protected:
  // Starts loophost with plugin "echo": loop-example itself when
  // `wrapper_script` is empty, else a /bin/sh script with that body; returns
  // after the "loophost started" line.
  void StartHost(const std::string& wrapper_script,
                 std::map<std::string, std::string> env = {}) {
    LoophostOptions options;
    options.binary = LH_LOOPHOST_BINARY;
    options.env = std::move(env);
    if (wrapper_script.empty()) {
      options.env["ECHO_PLUGIN_CMD"] = LH_LOOP_EXAMPLE_BINARY;
    } else {
      options.files["echo-wrapper.sh"] = "#!/bin/sh\n" + wrapper_script + "\n";
      options.env["ECHO_PLUGIN_CMD"] = "${WORK_DIR}/echo-wrapper.sh";
    }
    auto host = LoophostProcess::Start(std::move(options));
    ASSERT_THAT(host, IsOk());
    host_ = std::move(*host);
  }
  // A wrapper script body that ends by exec'ing loop-example.
  static std::string Wrapped(const std::string& before_exec) {
    return absl::StrCat(before_exec, "\nexec ", LH_LOOP_EXAMPLE_BINARY);
  }

  ::testing::AssertionResult WaitServing(absl::Duration timeout = kWait) {
    return host_->WaitFor(
        [&] { return host_->PluginState("echo") == "serving"; }, timeout,
        "echo serving");
  }

  std::unique_ptr<LoophostProcess> host_;
};

TEST_F(PluginFaultsTest, KilledPluginIsRestartedCountedAndShownMeanwhile) {
  // The wrapper refuses to start while the file "down" exists, so the dead
  // plugin stays down long enough to be seen in /health.
  StartHost(Wrapped("if [ -e \"$ECHO_DOWN_FILE\" ]; then echo 'held down' >&2; "
                    "exit 1; fi"),
            {{"ECHO_DOWN_FILE", "${WORK_DIR}/down"}});
  ASSERT_TRUE(WaitServing());
  pid_t first_pid = host_->PluginPid("echo");
  ASSERT_GT(first_pid, 0);

  std::ofstream(host_->WorkPath("down")) << "1";
  ASSERT_EQ(::kill(first_pid, SIGKILL), 0);
  // Held down: a start was refused, and /health says so.
  ASSERT_TRUE(host_->WaitFor(
      [&] {
        if (host_->LogLines({"held down", "plugin=echo"}).empty()) return false;
        auto health = host_->Get("/health");
        return health.ok() && health->status == 503 &&
               absl::StrContains(health->body, "!  echo");
      },
      kWait, "a refused start and /health showing echo failing"));
  EXPECT_THAT(host_->LogLines({"plugin died", "plugin=echo"}), Not(IsEmpty()));

  ASSERT_EQ(std::remove(host_->WorkPath("down").c_str()), 0);
  ASSERT_TRUE(WaitServing(
      absl::Seconds(40)));  // within the backoff, at most a few seconds
  EXPECT_NE(host_->PluginPid("echo"), first_pid);
  auto restarts =
      host_->Metric("loop_plugin_restarts_total", {{"plugin", "echo"}});
  ASSERT_TRUE(restarts.has_value());
  EXPECT_GE(*restarts, 2);  // the kill, then at least one refused start
  auto health = host_->Get("/health");
  ASSERT_THAT(health, IsOk());
  EXPECT_EQ(health->status, 200);
}

TEST_F(PluginFaultsTest, KilledPluginServesAgainQuickly) {
  StartHost("");
  ASSERT_TRUE(WaitServing());
  pid_t first_pid = host_->PluginPid("echo");
  absl::Time killed = absl::Now();
  ASSERT_EQ(::kill(first_pid, SIGKILL), 0);
  ASSERT_TRUE(host_->WaitFor(
      [&] {
        pid_t pid = host_->PluginPid("echo");
        return pid != first_pid && pid > 0 &&
               host_->PluginState("echo") == "serving";
      },
      kWait, "a new echo serving"));
  std::printf(
      "[timing] kill -9 to serving again (seen through /plugins): %.1f ms\n",
      absl::ToDoubleMilliseconds(absl::Now() - killed));
  EXPECT_EQ(host_->Metric("loop_plugin_restarts_total", {{"plugin", "echo"}}),
            1);
}

TEST_F(PluginFaultsTest,
       StoppedPluginIsUnhealthyWithinTwoDeadlinesThenRestarted) {
  StartHost("", {{"LOOPHOST_HEALTH_INTERVAL", "250ms"},
                 {"LOOPHOST_HEALTH_DEADLINE", "500ms"}});
  ASSERT_TRUE(WaitServing());
  pid_t frozen = host_->PluginPid("echo");
  absl::Time stopped = absl::Now();
  ASSERT_EQ(::kill(frozen, SIGSTOP), 0);
  ASSERT_TRUE(
      host_->WaitFor([&] { return host_->PluginState("echo") == "unhealthy"; },
                     absl::Seconds(5), "echo unhealthy"));
  absl::Duration to_unhealthy = absl::Now() - stopped;
  // The check in flight when it froze, plus one interval of slack for the
  // observer.
  EXPECT_LE(to_unhealthy, absl::Milliseconds(2 * 500 + 250 + 100));
  ASSERT_TRUE(host_->WaitFor(
      [&] {
        return host_->PluginPid("echo") != frozen &&
               host_->PluginState("echo") == "serving";
      },
      kWait, "echo restarted"));
  EXPECT_THAT(
      host_->LogLines({"plugin died", "plugin=echo", "health check failed"}),
      Not(IsEmpty()));
  EXPECT_FALSE(ForeignProcess::Open(frozen).ok() &&
               !ForeignProcess::Open(frozen)->exited());
}

TEST_F(PluginFaultsTest, JunkOnStdoutBeforeTheHandshakeIsLoggedAndTolerated) {
  StartHost(Wrapped("echo 'banner: starting up'; echo 'another line'"));
  ASSERT_TRUE(WaitServing());
  EXPECT_THAT(host_->LogLines({"banner: starting up", "plugin=echo"}),
              Not(IsEmpty()));
  EXPECT_THAT(host_->LogLines({"another line", "plugin=echo"}), Not(IsEmpty()));
}

TEST_F(PluginFaultsTest, NoHandshakeFailsAtTheStartTimeoutAndIsRetried) {
  StartHost("exec sleep 600", {{"LOOPHOST_START_TIMEOUT", "300ms"}});
  // The first restart is at once; the one after the second failure waits
  // (and says so in a line that follows the failure's).
  ASSERT_TRUE(host_->WaitFor(
      [&] {
        return host_->LogLines({"plugin failed to start", "plugin=echo"})
                       .size() >= 2 &&
               !host_->LogLines({"plugin restart scheduled", "plugin=echo"})
                    .empty();
      },
      kWait, "two failed starts and a scheduled restart"));
  std::vector<std::string> lines =
      host_->LogLines({"plugin failed to start", "plugin=echo"});
  EXPECT_THAT(lines[0], HasSubstr("handshake: no handshake within"));
  auto plugin = host_->Plugin("echo");
  ASSERT_TRUE(plugin.has_value());
  EXPECT_NE((*plugin)["state"], "serving");
  EXPECT_THAT((*plugin)["last_error"].get<std::string>(),
              HasSubstr("no handshake within"));
}

TEST_F(PluginFaultsTest,
       HundredMegabytesOnStderrKeepTheHostServingWithBoundedMemory) {
  // 10,000 lines of 10,000 bytes, written while the plugin serves.
  StartHost(
      Wrapped("(i=0; line=$(head -c 9999 /dev/zero | tr '\\0' 'x'); while [ $i "
              "-lt 10000 ]; do "
              "echo \"$line\"; i=$((i+1)); done; echo FLOOD-DONE) >&2 &"));
  ASSERT_TRUE(WaitServing());
  long rss_before = VmRssKb(host_->pid());
  long rss_max = rss_before;
  ASSERT_TRUE(host_->WaitFor(
      [&] {
        rss_max = std::max(rss_max, VmRssKb(host_->pid()));
        auto healthz = host_->Get("/healthz");
        EXPECT_TRUE(healthz.ok() && healthz->status == 200);
        return !host_->LogLines({"FLOOD-DONE", "plugin=echo"}).empty();
      },
      absl::Seconds(120), "the flood relayed"));
  std::printf(
      "[memory] host VmRSS %ld kB before, %ld kB max during 100 MB of plugin "
      "stderr\n",
      rss_before, rss_max);
  EXPECT_LT(rss_max - rss_before, 64 * 1024);
  EXPECT_EQ(host_->PluginState("echo"), "serving");
}

TEST_F(PluginFaultsTest, SigtermStopsPluginsGracefully) {
  StartHost("");
  ASSERT_TRUE(WaitServing());
  ASSERT_THAT(host_->Plugins(), IsOk());
  auto status = host_->Stop();
  ASSERT_THAT(status, IsOk());
  EXPECT_TRUE(status->ExitedWith(0)) << status->ToString();
  EXPECT_THAT(
      host_->LogLines({"plugin stopped", "plugin=echo", "exited with code 0"}),
      Not(IsEmpty()));
  EXPECT_TRUE(host_->SeenPluginsExited(absl::Seconds(1)));
}

}  // namespace
}  // namespace loophost::testing
