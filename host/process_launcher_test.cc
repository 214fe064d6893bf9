// Tests for PosixProcessLauncher and child_process_control.h with real
// children. Every test checks in TearDown that it left no child unreaped.
#include "host/process_launcher.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "host/child_process_control.h"
#include "host/process_test_util.h"
#include "host/sys_pidfd.h"

namespace loophost::host {
namespace {

using ::loophost::host::testing::ReadLine;
using ::loophost::host::testing::ReadUntilEof;
using ::loophost::host::testing::Shell;
using ::loophost::testing::IsOk;
using ::loophost::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::Duration kTimeout = absl::Seconds(10);

// Makes this process the reaper of its orphaned descendants (grandchildren
// whose parent died), so a test can reap them itself; undone on destruction.
class ScopedSubreaper {
 public:
  ScopedSubreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 1); }
  ~ScopedSubreaper() { ::prctl(PR_SET_CHILD_SUBREAPER, 0); }
};

// Waits until the process behind `pidfd` (not necessarily our child) exits.
::testing::AssertionResult ExitsWithin(int pidfd, absl::Duration timeout) {
  pollfd p{pidfd, POLLIN, 0};
  int n = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (n == 1) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "still running after " << absl::FormatDuration(timeout);
}

// Reaps an orphan adopted through ScopedSubreaper.
void ReapAdopted(int pid) {
  const absl::Time deadline = absl::Now() + kTimeout;
  while (absl::Now() < deadline) {
    int rc = ::waitpid(pid, nullptr, WNOHANG);
    if (rc == pid || (rc < 0 && errno == ECHILD)) return;
    // Reparenting happens as the parent exits; wait for its exit signal.
    UniqueFd fd(::pidfd_open(pid, 0));
    if (!fd.valid()) return;
    ExitsWithin(fd.get(), absl::Milliseconds(50));
  }
  ADD_FAILURE() << "could not reap adopted pid " << pid;
}

class ProcessLauncherTest : public ::testing::Test {
 protected:
  void TearDown() override {
    siginfo_t info = {};
    int rc = ::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
    EXPECT_TRUE(rc < 0 && errno == ECHILD)
        << "a child was left unreaped: pid " << info.si_pid;
  }

  // Runs spec to completion and returns its stdout.
  std::string RunForOutput(const ProcessSpec& spec,
                           std::string* exit = nullptr) {
    auto child = launcher_.Spawn(spec);
    EXPECT_THAT(child, IsOk());
    if (!child.ok()) return "";
    std::optional<std::string> out =
        ReadUntilEof(child->stdout_fd.get(), kTimeout);
    EXPECT_TRUE(out.has_value()) << "no EOF on stdout";
    EXPECT_TRUE(WaitForExit(*child, kTimeout));
    std::string how = ReapChild(*child);
    if (exit != nullptr) *exit = how;
    return out.value_or("");
  }

  PosixProcessLauncher launcher_;
};

TEST_F(ProcessLauncherTest, EnvironmentIsExactlyTheSpec) {
  ::setenv("LOOPHOST_TEST_LEAK", "host-only", 1);
  std::string exit;
  std::string out = RunForOutput(
      {"/usr/bin/env", {}, {"LOOP_NAME=ptp", "SPACED=a b", "EMPTY="}}, &exit);
  EXPECT_EQ(out, "LOOP_NAME=ptp\nSPACED=a b\nEMPTY=\n");
  EXPECT_EQ(exit, "exited with code 0");
}

TEST_F(ProcessLauncherTest, ArgvIsPassedWithoutShell) {
  std::string out = RunForOutput(
      {"/bin/echo", {"echo", "$HOME", "a;b", "*"}, {testing::kTestPath}});
  EXPECT_EQ(out, "$HOME a;b *\n");
}

TEST_F(ProcessLauncherTest, StdinIsDevNull) {
  std::string out = RunForOutput(Shell("readlink /proc/self/fd/0; cat"));
  EXPECT_EQ(out, "/dev/null\n");
}

TEST_F(ProcessLauncherTest, StderrIsItsOwnPipe) {
  auto child = launcher_.Spawn(Shell("echo out; echo err >&2"));
  ASSERT_THAT(child, IsOk());
  EXPECT_EQ(ReadUntilEof(child->stdout_fd.get(), kTimeout), "out\n");
  EXPECT_EQ(ReadUntilEof(child->stderr_fd.get(), kTimeout), "err\n");
  EXPECT_NE(::fcntl(child->stdout_fd.get(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(child->stdout_fd.get(), F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_NE(::fcntl(child->stderr_fd.get(), F_GETFL) & O_NONBLOCK, 0);
  EXPECT_TRUE(WaitForExit(*child, kTimeout));
  EXPECT_EQ(ReapChild(*child), "exited with code 0");
}

TEST_F(ProcessLauncherTest, HostFdsAreNotInherited) {
  // Descriptors the host opened without O_CLOEXEC must not leak either.
  UniqueFd leaky(::open("/dev/null", O_RDONLY));
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  UniqueFd leaky_read(fds[0]), leaky_write(fds[1]);
  std::string out = RunForOutput(Shell("ls /proc/self/fd"));
  std::vector<std::string> listed =
      absl::StrSplit(out, '\n', absl::SkipEmpty());
  // 0-2 and the directory ls itself opened to list them.
  EXPECT_THAT(listed, ElementsAre("0", "1", "2", "3"));
}

TEST_F(ProcessLauncherTest, OwnProcessGroupAndPidfd) {
  auto child = launcher_.Spawn({"/bin/sleep", {"sleep", "30"}, {}});
  ASSERT_THAT(child, IsOk());
  EXPECT_GT(child->pid, 0);
  EXPECT_EQ(::getpgid(child->pid), child->pid);
  EXPECT_NE(::getpgid(child->pid), ::getpgrp());
  EXPECT_TRUE(child->pidfd.valid());
  EXPECT_FALSE(WaitForExit(*child, absl::Milliseconds(10)));
  int exit_code = 0, term_signal = 0;
  EXPECT_EQ(TerminateChild(*child, absl::Seconds(5), &exit_code, &term_signal),
            "killed by signal 15 (Terminated)");
  EXPECT_EQ(exit_code, -1);
  EXPECT_EQ(term_signal, SIGTERM);
  EXPECT_EQ(child->pid, -1);
  EXPECT_FALSE(child->pidfd.valid());
  EXPECT_THAT(SignalProcessGroup(*child, SIGKILL), IsOk());  // reaped: no-op
}

TEST_F(ProcessLauncherTest, ExitCodeIsReported) {
  auto child = launcher_.Spawn(Shell("exit 7"));
  ASSERT_THAT(child, IsOk());
  EXPECT_TRUE(WaitForExit(*child, kTimeout));
  int exit_code = -1, term_signal = -1;
  EXPECT_EQ(ReapChild(*child, &exit_code, &term_signal), "exited with code 7");
  EXPECT_EQ(exit_code, 7);
  EXPECT_EQ(term_signal, 0);
}

TEST_F(ProcessLauncherTest, MissingExecutableIsNotFound) {
  auto child = launcher_.Spawn({"/nonexistent/plugin", {}, {}});
  EXPECT_THAT(child, StatusIs(absl::StatusCode::kNotFound,
                              "exec /nonexistent/plugin: No such file or "
                              "directory"));
}

TEST_F(ProcessLauncherTest, NonExecutableFileIsPermissionDenied) {
  char path[] = "/tmp/loophost-noexec-XXXXXX";
  UniqueFd fd(::mkstemp(path));
  ASSERT_TRUE(fd.valid());
  ::fchmod(fd.get(), 0644);
  fd.Reset();
  auto child = launcher_.Spawn({path, {}, {}});
  ::unlink(path);
  EXPECT_THAT(child,
              StatusIs(absl::StatusCode::kPermissionDenied,
                       absl::StrCat("exec ", path, ": Permission denied")));
}

TEST_F(ProcessLauncherTest, MalformedSpecIsRejected) {
  EXPECT_THAT(
      launcher_.Spawn({"", {}, {}}),
      StatusIs(absl::StatusCode::kInvalidArgument, "empty executable path"));
  EXPECT_THAT(launcher_.Spawn({"/bin/true", {}, {"NOEQUALS"}}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"NOEQUALS\" is not KEY=VALUE")));
}

TEST_F(ProcessLauncherTest, SignalDispositionsAndMaskAreReset) {
  // A host that ignores SIGPIPE (most do) must not pass that on, and the
  // launcher thread's blocked mask must not reach the child either.
  struct sigaction ignore = {}, old = {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGINT, &ignore, &old);
  std::string out =
      RunForOutput(Shell("grep -E '^(SigIgn|SigBlk):' /proc/self/status"));
  ::sigaction(SIGINT, &old, nullptr);
  EXPECT_THAT(out, HasSubstr("SigBlk:\t0000000000000000\n"));
  EXPECT_THAT(out, HasSubstr("SigIgn:\t0000000000000000\n"));
}

TEST_F(ProcessLauncherTest, ConcurrentSpawns) {
  std::vector<std::thread> threads;
  std::vector<std::string> results(8);
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([this, i, &results] {
      auto child = launcher_.Spawn(Shell(absl::StrCat("exit ", i)));
      if (!child.ok()) {
        results[i] = std::string(child.status().message());
        return;
      }
      WaitForExit(*child, kTimeout);
      results[i] = ReapChild(*child);
    });
  }
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i], absl::StrCat("exited with code ", i));
  }
}

TEST_F(ProcessLauncherTest, TerminateEscalatesToSigkillAfterGrace) {
  auto child =
      launcher_.Spawn(Shell("trap '' TERM; echo ready; exec sleep 30"));
  ASSERT_THAT(child, IsOk());
  ASSERT_EQ(ReadLine(child->stdout_fd.get(), kTimeout), "ready");
  const absl::Duration grace = absl::Milliseconds(200);
  const absl::Time start = absl::Now();
  int term_signal = 0;
  EXPECT_EQ(TerminateChild(*child, grace, nullptr, &term_signal),
            "killed by signal 9 (Killed)");
  EXPECT_EQ(term_signal, SIGKILL);
  EXPECT_GE(absl::Now() - start, grace);
  EXPECT_EQ(child->pid, -1);
}

TEST_F(ProcessLauncherTest, TerminateKillsGrandchildrenInTheGroup) {
  ScopedSubreaper subreaper;
  // The grandchild ignores SIGTERM and outlives its parent, the group leader.
  auto child = launcher_.Spawn(
      Shell("(trap '' TERM; exec /bin/sh -c 'echo $$; exec sleep 30') & wait"));
  ASSERT_THAT(child, IsOk());
  std::optional<std::string> line = ReadLine(child->stdout_fd.get(), kTimeout);
  ASSERT_TRUE(line.has_value());
  int grandchild = 0;
  ASSERT_TRUE(absl::SimpleAtoi(*line, &grandchild)) << *line;
  UniqueFd grandchild_fd(::pidfd_open(grandchild, 0));
  ASSERT_TRUE(grandchild_fd.valid());
  EXPECT_EQ(::getpgid(grandchild), child->pid);

  EXPECT_EQ(TerminateChild(*child, absl::Seconds(5)),
            "killed by signal 15 (Terminated)");
  EXPECT_TRUE(ExitsWithin(grandchild_fd.get(), absl::Seconds(1)));
  ReapAdopted(grandchild);
}

TEST_F(ProcessLauncherTest, ChildDiesWithItsHost) {
  ScopedSubreaper subreaper;
  // The helper plays the host: it spawns `sleep` through its own launcher.
  auto host = launcher_.Spawn(
      {LH_TEST_HELPER, {LH_TEST_HELPER, "/bin/sleep", "30"}, {}});
  ASSERT_THAT(host, IsOk());
  std::optional<std::string> line = ReadLine(host->stdout_fd.get(), kTimeout);
  ASSERT_TRUE(line.has_value())
      << ReadUntilEof(host->stderr_fd.get(), absl::Seconds(1)).value_or("");
  int plugin = 0;
  ASSERT_TRUE(absl::SimpleAtoi(*line, &plugin)) << *line;
  UniqueFd plugin_fd(::pidfd_open(plugin, 0));
  ASSERT_TRUE(plugin_fd.valid());
  EXPECT_EQ(::getpgid(plugin), plugin);  // not in the helper's group

  // SIGKILL the helper alone (not its group): only PDEATHSIG can end `sleep`.
  ASSERT_EQ(::kill(host->pid, SIGKILL), 0);
  EXPECT_TRUE(WaitForExit(*host, kTimeout));
  EXPECT_EQ(ReapChild(*host), "killed by signal 9 (Killed)");
  EXPECT_TRUE(ExitsWithin(plugin_fd.get(), absl::Seconds(1)));
  ReapAdopted(plugin);
}

TEST_F(ProcessLauncherTest, WaitForExitTimesOut) {
  auto child = launcher_.Spawn({"/bin/sleep", {"sleep", "30"}, {}});
  ASSERT_THAT(child, IsOk());
  EXPECT_FALSE(WaitForExit(*child, absl::Milliseconds(50)));
  EXPECT_THAT(SignalProcessGroup(*child, SIGKILL), IsOk());
  EXPECT_TRUE(WaitForExit(*child, kTimeout));
  EXPECT_THAT(ReapChild(*child), StartsWith("killed by signal 9"));
}

}  // namespace
}  // namespace loophost::host
