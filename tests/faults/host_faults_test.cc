// The host itself under faults, with the real binaries: loophost killed with
// SIGKILL (its plugins must not outlive it), bad configuration values (one line
// naming the variable, exit 2), the Prometheus port range exhausted, and
// --help.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "tests/testing/loophost_process.h"

namespace loophost::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

// Runs loophost to completion with exactly `env` (plus PATH) and `args`.
RunResult RunLoophost(const std::vector<std::string>& env,
                      const std::vector<std::string>& args = {}) {
  auto dir = TempDir::Create("lh-host-faults-");
  EXPECT_THAT(dir, IsOk());
  if (!dir.ok()) return {};
  ChildOptions options;
  options.argv = {LH_LOOPHOST_BINARY};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.env = env;
  options.env.push_back("PATH=/usr/bin:/bin");
  options.env.push_back(
      absl::StrCat("LOOPHOST_STATE_DIR=", dir->Join("state")));
  return RunToExit(std::move(options), *dir, absl::Seconds(20));
}

TEST(HostFaults, KilledHostLeavesNoPluginBehind) {
  LoophostOptions options;
  options.binary = LH_LOOPHOST_BINARY;
  options.env = {{"ECHO_PLUGIN_CMD", LH_LOOP_EXAMPLE_BINARY},
                 {"OTHER_PLUGIN_CMD", LH_LOOP_EXAMPLE_BINARY}};
  auto host = LoophostProcess::Start(std::move(options));
  ASSERT_THAT(host, IsOk());
  ASSERT_TRUE((*host)->WaitFor(
      [&] {
        return (*host)->PluginState("echo") == "serving" &&
               (*host)->PluginState("other") == "serving";
      },
      absl::Seconds(20), "both plugins serving"));
  auto echo = ForeignProcess::Open((*host)->PluginPid("echo"));
  auto other = ForeignProcess::Open((*host)->PluginPid("other"));
  ASSERT_THAT(echo, IsOk());
  ASSERT_THAT(other, IsOk());
  ASSERT_EQ(::kill((*host)->pid(), SIGKILL), 0);
  EXPECT_TRUE(echo->WaitExited(absl::Seconds(1)));
  EXPECT_TRUE(other->WaitExited(absl::Seconds(1)));
}

TEST(HostFaults, BadValuesFailFastWithOneLineNamingTheVariable) {
  struct Case {
    std::vector<std::string> env;
    std::string message;
  } cases[] = {
      {{"LOOPHOST_METRICS_ADDR=localhost"},
       "LOOPHOST_METRICS_ADDR=localhost: expected host:port"},
      {{"LOOPHOST_HEALTH_DEADLINE=soon"},
       "LOOPHOST_HEALTH_DEADLINE=soon: not a duration"},
      {{"LOOPHOST_PROMETHEUS_PORTS=9-1"}, "LOOPHOST_PROMETHEUS_PORTS=9-1"},
      {{"LOOPHOST_LOG_LEVEL=loud"}, "LOOPHOST_LOG_LEVEL=loud"},
      {{"EXAMPLE_PLUGIN=maybe"}, "EXAMPLE_PLUGIN=maybe: not a boolean"},
      {{"ECHO_PLUGIN_CMD=/no/such/plugin"},
       "ECHO_PLUGIN_CMD=/no/such/plugin: No such file or directory"},
      {{"FOO_PLUGIN=true"}, "FOO_PLUGIN=true: no built-in loop \"foo\""},
      // A built-in loop's own variables are checked before anything starts,
      // in-process or as a child.
      {{"PTP_PLUGIN=true", "PTP_THRESHOLD_MAX_OFFSET_NS=lots"},
       "PTP_THRESHOLD_MAX_OFFSET_NS=lots"},
      {{"PTP_PLUGIN=true", "PTP_HOLDOVER_TIMEOUT_S=-1"},
       "PTP_HOLDOVER_TIMEOUT_S=-1"},
      {{"PTP_PLUGIN=true", "PTP_PLUGIN_CMD=/bin/true",
        "PTP_THRESHOLD_MIN_OFFSET_NS=x"},
       "PTP_THRESHOLD_MIN_OFFSET_NS=x"},
      {{"HTTP_TRANSPORT_TIMEOUT=forever"}, "HTTP_TRANSPORT_TIMEOUT=forever"},
  };
  for (const Case& c : cases) {
    RunResult r = RunLoophost(c.env);
    EXPECT_TRUE(r.status.ExitedWith(2))
        << c.message << ": " << r.status.ToString();
    EXPECT_THAT(r.err, HasSubstr(c.message));
    std::vector<std::string> lines =
        absl::StrSplit(r.err, '\n', absl::SkipEmpty());
    EXPECT_THAT(lines, SizeIs(1)) << r.err;
  }
}

TEST(HostFaults, ExhaustedPortRangeIsAClearError) {
  // Hold a kernel-chosen port bound, and give loophost only that one.
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
            0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len),
            0);
  int port = ntohs(addr.sin_port);
  RunResult r =
      RunLoophost({absl::StrCat("LOOPHOST_PROMETHEUS_PORTS=", port, "-", port),
                   absl::StrCat("ECHO_PLUGIN_CMD=", LH_LOOP_EXAMPLE_BINARY),
                   "LOOPHOST_METRICS_ADDR=127.0.0.1:0"});
  EXPECT_TRUE(r.status.ExitedWith(1)) << r.status.ToString();
  EXPECT_THAT(
      r.err,
      HasSubstr(absl::StrCat(
          "registering loop \\\"echo\\\": no free Prometheus port in ", port)));
}

TEST(HostFaults, HelpTellsTheTruth) {
  RunResult r = RunLoophost({}, {"--help"});
  EXPECT_TRUE(r.status.ExitedWith(0)) << r.status.ToString();
  for (const char* text :
       {"--metrics-addr", "LOOPHOST_METRICS_ADDR", "LOOPHOST_STATE_DIR",
        "<NAME>_PLUGIN_CMD", "<NAME>_PLUGIN_ENV", "example", "/discovery"}) {
    EXPECT_THAT(r.out, HasSubstr(text));
  }
  RunResult bad = RunLoophost({}, {"--no-such-flag"});
  EXPECT_TRUE(bad.status.ExitedWith(2)) << bad.status.ToString();
  EXPECT_THAT(bad.err, HasSubstr("--no-such-flag"));
}

}  // namespace
}  // namespace loophost::testing
