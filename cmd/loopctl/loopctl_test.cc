// Runs the real loopctl binary against a real OperatorServer on 127.0.0.1:0
// with a fake plugin directory: output, exit codes, bad usage and an
// unreachable host.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/status_matchers.h"
#include "host/host_metrics.h"
#include "host/operator_server.h"

namespace loophost {
namespace {

using ::loophost::testing::IsOk;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct CliRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `env_prefix loopctl args` through the shell; stdout and stderr captured
// apart.
CliRun Loopctl(const std::string& args, const std::string& env_prefix = "") {
  const std::string err_path =
      ::testing::TempDir() + "/loopctl_test_stderr.txt";
  const std::string command =
      absl::StrCat("env -u LOOPHOST_METRICS_ADDR ", env_prefix, " '",
                   LOOPCTL_PATH, "' ", args, " 2>'", err_path, "'");
  CliRun run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof(buffer), pipe)) > 0;)
    run.out.append(buffer, n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_path);
  std::stringstream ss;
  ss << err.rdbuf();
  run.err = ss.str();
  return run;
}

class FakePluginDirectory : public host::PluginDirectory {
 public:
  void Set(std::vector<host::PluginStatus> plugins) {
    absl::MutexLock lock(&mu_);
    plugins_ = std::move(plugins);
  }
  std::vector<host::PluginStatus> ListPlugins() const override {
    absl::MutexLock lock(&mu_);
    return plugins_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<host::PluginStatus> plugins_ ABSL_GUARDED_BY(mu_);
};

class LoopctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    host::PluginStatus ptp;
    ptp.name = "ptp";
    ptp.version = "1.2.3";
    ptp.kinds = {"event_source"};
    ptp.command = "/usr/bin/loop-ptp";
    ptp.state = host::PluginState::kServing;
    ptp.pid = 4242;
    ptp.started_at = absl::Now() - absl::Seconds(3725);
    ptp.prometheus_port = 20001;
    ptp.checks = {{"ptp", ""}, {"ptp.ts2phc", ""}};
    host::PluginStatus http;
    http.name = "http";
    http.kinds = {"transport"};
    http.in_process = true;
    http.state = host::PluginState::kBackoff;
    http.restarts = 3;
    http.checks = {{"http", "not running"}};
    directory_.Set({http, ptp});

    host::OperatorServerOptions options;
    options.listen = HostPort{"127.0.0.1", 0};
    server_ =
        std::make_unique<host::OperatorServer>(options, directory_, metrics_);
    ASSERT_THAT(server_->Start(), IsOk());
    addr_ = absl::StrCat("127.0.0.1:", server_->port());
  }

  FakePluginDirectory directory_;
  host::HostMetrics metrics_;
  std::unique_ptr<host::OperatorServer> server_;
  std::string addr_;
};

TEST_F(LoopctlTest, Status) {
  CliRun run = Loopctl(absl::StrCat("--addr ", addr_, " status"));
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(
      run.out,
      "PLUGIN  PID   STATE    UPTIME  RESTARTS  HEALTH\n"
      "http    -     backoff  -       3         1 failing: http: not running\n"
      "ptp     4242  serving  1h02m   0         ok\n");
}

TEST_F(LoopctlTest, PluginsWithAddressFromEnv) {
  CliRun run =
      Loopctl("plugins", absl::StrCat("LOOPHOST_METRICS_ADDR=", addr_));
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out,
            "PLUGIN  VERSION  KINDS         PORT   MODE\n"
            "http    -        transport     -      in-process\n"
            "ptp     1.2.3    event_source  20001  child /usr/bin/loop-ptp\n");
}

TEST_F(LoopctlTest, HealthExitsOneWhileAnyCheckFails) {
  CliRun run = Loopctl(absl::StrCat("--addr ", addr_, " health"));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "!  http\n\tnot running\nok ptp\nok ptp.ts2phc\n");

  host::PluginStatus ptp = directory_.ListPlugins()[1];
  directory_.Set({ptp});
  run = Loopctl(absl::StrCat("--addr ", addr_, " health"));
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_EQ(run.out, "ok ptp\nok ptp.ts2phc\n");
}

TEST(LoopctlUsageTest, HelpNamesCommandsAndAddress) {
  CliRun run = Loopctl("--help");
  EXPECT_EQ(run.exit_code, 0);
  for (const char* word :
       {"status", "health", "plugins", "--addr", "LOOPHOST_METRICS_ADDR"}) {
    EXPECT_THAT(run.out, HasSubstr(word));
  }
}

TEST(LoopctlUsageTest, BadUsageExitsTwo) {
  for (const std::string args :
       {"", "frobnicate", "status --bogus", "--addr nonsense status"}) {
    CliRun run = Loopctl(args);
    EXPECT_EQ(run.exit_code, 2) << args;
    EXPECT_FALSE(run.err.empty()) << args;
    EXPECT_EQ(run.out, "") << args;
  }
  EXPECT_THAT(Loopctl("--addr nonsense status").err,
              HasSubstr("--addr=nonsense"));
}

TEST(LoopctlUsageTest, UnreachableHostIsOneLineAndExitOne) {
  // A bound socket that does not listen: connecting to it is refused.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string target = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));

  CliRun run = Loopctl(absl::StrCat("--addr ", target, " status"));
  close(fd);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_EQ(run.out, "");
  EXPECT_THAT(run.err, StartsWith(absl::StrCat(
                           "loopctl: cannot reach loophost at ", target)));
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(run.err, '\n')).size(), 2u)
      << run.err;
}

}  // namespace
}  // namespace loophost
