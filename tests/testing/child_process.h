// Test-side process helpers for integration tests that run the real binaries
// (loophost, plugins, the go-plugin host): a private temp dir, a child process
// in its own process group with stdout/stderr in files, waits with deadlines,
// and polling of a condition until a deadline (WaitFor), so that no test uses a
// sleep as synchronisation.
//
// Every child is reaped: ChildProcess's destructor SIGKILLs the child's process
// group if the child is still running and waits for it. Children get
// PR_SET_PDEATHSIG(SIGKILL), so a crashed test binary leaves nothing behind.
// Spawn from the test's main thread (the parent-death signal fires when the
// spawning *thread* exits).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace loophost::testing {

// Polls `condition` (every 10 ms) until it returns true or `timeout` passes.
// On timeout the failure names `what` and the time waited:
//   ASSERT_TRUE(WaitFor([&] { return Ready(); }, absl::Seconds(10), "ready"));
::testing::AssertionResult WaitFor(const std::function<bool()>& condition,
                                   absl::Duration timeout,
                                   const std::string& what);

// A directory created with mkdtemp under $TMPDIR (or /tmp), removed with its
// contents on destruction unless Keep() was called.
class TempDir {
 public:
  // `prefix` becomes the start of the directory's name, e.g. "lh-interop-".
  static absl::StatusOr<TempDir> Create(const std::string& prefix);
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::string& path() const { return path_; }
  // `path()/name`.
  std::string Join(const std::string& name) const;
  // Leave the directory in place (for a post-mortem after a failed test).
  void Keep() { keep_ = true; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
  bool keep_ = false;
};

// How a child ended.
struct ExitStatus {
  bool exited = false;  // true: exit() with `code`; false: killed by `signal`
  int code = -1;
  int signal = 0;

  bool ExitedWith(int expected_code) const {
    return exited && code == expected_code;
  }
  // "exited with code 0" or "killed by signal 9 (Killed)".
  std::string ToString() const;
};

struct ChildOptions {
  std::vector<std::string> argv;  // argv[0] is the executable's path; no shell
  std::vector<std::string> env;   // the whole environment, "KEY=VALUE"
  std::string stdout_path;        // truncated and written; empty: /dev/null
  std::string stderr_path;        // truncated and written; empty: /dev/null
};

// A child process started with fork+exec: stdin /dev/null, its own process
// group (pgid == pid), parent-death signal SIGKILL, default signal mask and
// dispositions. Not thread-safe; one owner.
class ChildProcess {
 public:
  // Fails (with the child already reaped) if the exec fails.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(
      const ChildOptions& options);
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // KillAndReap() if still running.
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // False once the child has exited and been reaped.
  bool running();
  // Set once the child has been reaped.
  const std::optional<ExitStatus>& exit_status() const { return exit_status_; }

  // Sends `signal` to the child (not its group). A no-op once reaped.
  absl::Status Signal(int signal);
  // Sends `signal` to the child's process group (also after the child itself
  // was reaped: stragglers that stayed in the group get it).
  absl::Status SignalGroup(int signal);
  // Waits up to `timeout` for the child to exit and reaps it.
  // DeadlineExceeded if it is still running then.
  absl::StatusOr<ExitStatus> Wait(absl::Duration timeout);
  // SIGKILL to the process group, then reap. Returns how the child ended
  // (also if it had ended before).
  ExitStatus KillAndReap();

 private:
  ChildProcess(pid_t pid, UniqueFd pidfd)
      : pid_(pid), pidfd_(std::move(pidfd)) {}
  // Reaps the child if it has exited; true if reaped (now or before).
  bool TryReap();

  pid_t pid_;
  UniqueFd pidfd_;  // readable once the child has exited
  std::optional<ExitStatus> exit_status_;
};

// A process that is not our child (e.g. a plugin started by loophost), held
// through a pidfd so that it can be watched and signalled without pid reuse
// races. It cannot be reaped by us; its parent (or init) does that.
class ForeignProcess {
 public:
  // Fails if `pid` does not exist (any more).
  static absl::StatusOr<ForeignProcess> Open(pid_t pid);

  pid_t pid() const { return pid_; }
  // True once the process has exited (it may still be a zombie).
  bool exited() const;
  // Waits up to `timeout` for exited().
  bool WaitExited(absl::Duration timeout) const;
  absl::Status Signal(int signal) const;

 private:
  ForeignProcess(pid_t pid, UniqueFd pidfd)
      : pid_(pid), pidfd_(std::move(pidfd)) {}
  pid_t pid_;
  UniqueFd pidfd_;
};

// How a child run to completion ended, and what it printed.
struct RunResult {
  ExitStatus status;
  std::string out;
  std::string err;
};

// Spawns `options` with its stdout and stderr in new files under `dir`, waits
// up to `timeout` for it to exit, and returns how it ended with what it wrote.
// A spawn or wait that fails is a test failure (status then says "killed by
// signal 0").
RunResult RunToExit(ChildOptions options, const TempDir& dir,
                    absl::Duration timeout);

// The whole content of a file; empty if it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

// The last `max_lines` lines of `text`.
std::string LastLines(const std::string& text, size_t max_lines);

}  // namespace loophost::testing
