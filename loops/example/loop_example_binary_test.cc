// Runs the real loop-example binary as loophost would: the go-plugin handshake,
// a call over its unix socket, and every way it stops (Shutdown RPC, SIGTERM,
// death of its parent). Each test has its own temp dir; every wait has a
// deadline; every child is reaped.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/unique_fd.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "loophost/v1/echo.grpc.pb.h"
#include "loophost/v1/plugin.grpc.pb.h"
#include "plugin/grpc_controller.grpc.pb.h"

#ifndef LOOP_EXAMPLE_PATH
#error "LOOP_EXAMPLE_PATH must name the loop-example binary"
#endif

namespace loophost::loops::example {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

constexpr absl::Duration kTimeout = absl::Seconds(10);
constexpr char kCookie[] = "LOOPHOST_PLUGIN_COOKIE=d2a4c6e8-loophost-v1";

int PollMs(absl::Time deadline) {
  return static_cast<int>(std::max<int64_t>(
      0, absl::ToInt64Milliseconds(deadline - absl::Now()) + 1));
}

// A child process with stdout and stderr on pipes.
class Child {
 public:
  // `argv[0]` is the program; `env` its whole environment.
  bool Spawn(const std::vector<std::string>& argv,
             const std::vector<std::string>& env) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      return false;
    }
    stdout_.Reset(out[0]);
    stderr_.Reset(err[0]);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                     O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    std::vector<char*> args, envp;
    for (const std::string& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    for (const std::string& e : env)
      envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(),
                           envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    ::close(err[1]);
    if (rc != 0) {
      pid_ = -1;
      return false;
    }
    pidfd_.Reset(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
    return pidfd_.valid();
  }

  // Reads stdout up to and without the next '\n'.
  ::testing::AssertionResult ReadLine(std::string* line) {
    const absl::Time deadline = absl::Now() + kTimeout;
    while (true) {
      if (size_t nl = out_.find('\n'); nl != std::string::npos) {
        *line = out_.substr(0, nl);
        out_.erase(0, nl + 1);
        return ::testing::AssertionSuccess();
      }
      pollfd fds[2] = {{stdout_.get(), POLLIN, 0}, {stderr_.get(), POLLIN, 0}};
      if (::poll(fds, 2, PollMs(deadline)) <= 0) {
        return ::testing::AssertionFailure()
               << "no line on stdout within " << kTimeout
               << "; stderr: " << err_;
      }
      if (fds[1].revents != 0) Drain(stderr_, err_);
      if (fds[0].revents != 0 && !Drain(stdout_, out_)) {
        return ::testing::AssertionFailure()
               << "stdout closed; got: " << out_ << "; stderr: " << err_;
      }
    }
  }

  // Waits for the exit (draining both pipes), reaps, stores the exit code.
  ::testing::AssertionResult WaitExit(int* exit_code) {
    const absl::Time deadline = absl::Now() + kTimeout;
    while (true) {
      pollfd fds[3] = {{pidfd_.get(), POLLIN, 0},
                       {stdout_.get(), POLLIN, 0},
                       {stderr_.get(), POLLIN, 0}};
      if (::poll(fds, 3, PollMs(deadline)) <= 0) {
        return ::testing::AssertionFailure()
               << "still running after " << kTimeout << "; stderr: " << err_;
      }
      if (fds[1].revents != 0 && !Drain(stdout_, out_)) stdout_.Reset();
      if (fds[2].revents != 0 && !Drain(stderr_, err_)) stderr_.Reset();
      if (fds[0].revents != 0) break;
    }
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) {
      return ::testing::AssertionFailure() << "waitpid failed";
    }
    pid_ = -1;
    while (stdout_.valid() && Drain(stdout_, out_)) {
    }
    while (stderr_.valid() && Drain(stderr_, err_)) {
    }
    if (!WIFEXITED(status)) {
      return ::testing::AssertionFailure()
             << "killed by signal " << WTERMSIG(status) << "; stderr: " << err_;
    }
    *exit_code = WEXITSTATUS(status);
    return ::testing::AssertionSuccess();
  }

  // SIGKILL and reap, if still running.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  ~Child() { Kill(); }

  pid_t pid() const { return pid_; }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  // Appends what is readable now; false at EOF.
  static bool Drain(const UniqueFd& fd, std::string& into) {
    if (!fd.valid()) return false;
    char buf[4096];
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n <= 0) return false;
    into.append(buf, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd stdout_;
  UniqueFd stderr_;
  std::string out_;
  std::string err_;
};

class LoopExampleBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/loop_example_test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
  }
  void TearDown() override {
    child_.Kill();
    std::filesystem::remove_all(dir_);
  }

  // The environment loophost gives the plugin.
  std::vector<std::string> PluginEnv() const {
    return {kCookie, "PLUGIN_PROTOCOL_VERSIONS=1",
            "PLUGIN_UNIX_SOCKET_DIR=" + dir_, "LOOP_NAME=example",
            "PATH=/usr/bin:/bin"};
  }

  // Starts the plugin and parses its handshake; returns the socket path.
  std::string StartPlugin() {
    EXPECT_TRUE(child_.Spawn({LOOP_EXAMPLE_PATH}, PluginEnv()));
    std::string line;
    EXPECT_TRUE(child_.ReadLine(&line));
    std::vector<std::string> fields = absl::StrSplit(line, '|');
    EXPECT_EQ(fields.size(), 6u) << line;
    if (fields.size() != 6) return "";
    EXPECT_EQ(fields[0], "1");  // core protocol
    EXPECT_EQ(fields[1], "1");  // app protocol
    EXPECT_EQ(fields[2], "unix");
    EXPECT_THAT(fields[3], StartsWith(dir_ + "/"));
    EXPECT_EQ(fields[4], "grpc");
    EXPECT_EQ(fields[5], "");
    return fields[3];
  }

  static void SetDeadline(grpc::ClientContext& context) {
    context.set_deadline(absl::ToChronoTime(absl::Now() + kTimeout));
  }

  static bool Exists(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  }

  std::string dir_;
  Child child_;
};

TEST_F(LoopExampleBinaryTest, WithoutCookieSaysItIsAPluginAndExits1) {
  ASSERT_TRUE(child_.Spawn({LOOP_EXAMPLE_PATH}, {"PATH=/usr/bin:/bin"}));
  int code = -1;
  ASSERT_TRUE(child_.WaitExit(&code));
  EXPECT_EQ(code, 1);
  EXPECT_THAT(child_.err(), HasSubstr("is a loophost plugin"));
  EXPECT_THAT(child_.err(), HasSubstr("EXAMPLE_PLUGIN_CMD"));
  EXPECT_THAT(child_.out(), IsEmpty());
}

TEST_F(LoopExampleBinaryTest, UnsupportedProtocolVersionExits1) {
  ASSERT_TRUE(child_.Spawn({LOOP_EXAMPLE_PATH},
                           {kCookie, "PLUGIN_PROTOCOL_VERSIONS=2,3",
                            "PLUGIN_UNIX_SOCKET_DIR=" + dir_}));
  int code = -1;
  ASSERT_TRUE(child_.WaitExit(&code));
  EXPECT_EQ(code, 1);
  EXPECT_THAT(child_.err(), HasSubstr("PLUGIN_PROTOCOL_VERSIONS=2,3"));
  EXPECT_THAT(child_.out(), IsEmpty());
}

TEST_F(LoopExampleBinaryTest, VersionAndHelp) {
  ASSERT_TRUE(child_.Spawn({LOOP_EXAMPLE_PATH, "--version"}, {}));
  int code = -1;
  ASSERT_TRUE(child_.WaitExit(&code));
  EXPECT_EQ(code, 0);
  EXPECT_EQ(child_.out(), std::string("example ") + LH_VERSION + "\n");

  Child help;
  ASSERT_TRUE(help.Spawn({LOOP_EXAMPLE_PATH, "--help"}, {}));
  ASSERT_TRUE(help.WaitExit(&code));
  EXPECT_EQ(code, 0);
  EXPECT_THAT(help.out(), HasSubstr("loophost plugin"));
  EXPECT_THAT(help.out(), HasSubstr("LOOP_PROMETHEUS_PORT"));
  EXPECT_THAT(help.out(), HasSubstr("PLUGIN_UNIX_SOCKET_DIR"));
}

TEST_F(LoopExampleBinaryTest, HandshakeEchoAndShutdownRpc) {
  const std::string socket = StartPlugin();
  ASSERT_FALSE(socket.empty());
  EXPECT_TRUE(Exists(socket));
  auto channel =
      grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());

  {  // go-plugin's liveness check.
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::health::v1::HealthCheckRequest request;
    request.set_service("plugin");
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(grpc::health::v1::Health::NewStub(channel)
                    ->Check(&context, request, &response)
                    .ok());
    EXPECT_EQ(response.status(),
              grpc::health::v1::HealthCheckResponse::SERVING);
  }
  {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::DescribeResponse response;
    ASSERT_TRUE(
        v1::Plugin::NewStub(channel)->Describe(&context, {}, &response).ok());
    EXPECT_EQ(response.name(), "example");
    EXPECT_EQ(response.version(), LH_VERSION);
  }
  {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::EchoRequest request;
    request.set_payload("hello plugin");
    v1::EchoResponse response;
    ASSERT_TRUE(
        v1::Echo::NewStub(channel)->Echo(&context, request, &response).ok());
    EXPECT_EQ(response.payload(), "hello plugin");
  }
  {
    grpc::ClientContext context;
    SetDeadline(context);
    ::plugin::Empty response;
    grpc::Status status = ::plugin::GRPCController::NewStub(channel)->Shutdown(
        &context, {}, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  int code = -1;
  ASSERT_TRUE(child_.WaitExit(&code));
  EXPECT_EQ(code, 0) << child_.err();
  EXPECT_FALSE(Exists(socket));
  EXPECT_THAT(child_.err(), HasSubstr("serving"));
  EXPECT_THAT(child_.err(), HasSubstr("stopped"));
  EXPECT_THAT(child_.out(), IsEmpty());  // one handshake line, nothing else
}

TEST_F(LoopExampleBinaryTest, SigtermStopsGracefully) {
  const std::string socket = StartPlugin();
  ASSERT_FALSE(socket.empty());
  ASSERT_EQ(::kill(child_.pid(), SIGTERM), 0);
  int code = -1;
  ASSERT_TRUE(child_.WaitExit(&code));
  EXPECT_EQ(code, 0) << child_.err();
  EXPECT_FALSE(Exists(socket));
  // Any log format (plain or hclog JSON): the line and the signal's name.
  EXPECT_THAT(child_.err(), HasSubstr("signal received"));
  EXPECT_THAT(child_.err(), HasSubstr("TERM"));
}

TEST_F(LoopExampleBinaryTest, ExitsWhenItsParentDies) {
  // sh is the plugin's parent; this test process adopts the plugin when sh
  // dies (child subreaper), so it can still reap it.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  std::vector<std::string> env = PluginEnv();
  ASSERT_TRUE(child_.Spawn(
      {"/bin/sh", "-c", "\"$0\" & echo \"pid=$!\"; wait", LOOP_EXAMPLE_PATH},
      env));
  pid_t plugin = -1;
  std::string socket;
  for (int i = 0; i < 2; ++i) {
    std::string line;
    ASSERT_TRUE(child_.ReadLine(&line));
    if (line.rfind("pid=", 0) == 0) {
      plugin = std::stoi(line.substr(4));
    } else {
      std::vector<std::string> fields = absl::StrSplit(line, '|');
      ASSERT_EQ(fields.size(), 6u) << line;
      socket = fields[3];
    }
  }
  ASSERT_GT(plugin, 0);
  UniqueFd plugin_fd(static_cast<int>(::syscall(SYS_pidfd_open, plugin, 0)));
  ASSERT_TRUE(plugin_fd.valid());

  child_.Kill();  // SIGKILL sh: the plugin's parent is gone.

  pollfd fd = {plugin_fd.get(), POLLIN, 0};
  const bool exited = ::poll(&fd, 1, PollMs(absl::Now() + kTimeout)) == 1;
  if (!exited) ::kill(plugin, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(plugin, &status, 0), plugin);
  ASSERT_TRUE(exited) << "plugin still running after its parent died";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(Exists(socket));
}

}  // namespace
}  // namespace loophost::loops::example
