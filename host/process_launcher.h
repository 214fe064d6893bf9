// Starting plugin processes. ProcessLauncher is the seam the supervisor uses;
// PosixProcessLauncher forks and execs real children (no shell, own process
// group, stdin /dev/null, explicit env, parent-death signal). The caller owns
// the returned ChildProcess and must reap it (child_process_control.h).
// Spawn() is thread-safe.
#pragma once

#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/unique_fd.h"

namespace loophost::host {

struct ProcessSpec {
  std::string path;               // executable; run with no shell
  std::vector<std::string> argv;  // argv[0] included; empty = {path}
  std::vector<std::string> env;   // "KEY=VALUE", the child's whole environment
};

// A running (or exited, not yet reaped) child. Move-only through its fds.
// ReapChild() sets pid to -1 and closes pidfd, so a reaped pid (which the
// kernel may reuse) is never signalled.
struct ChildProcess {
  int pid = -1;
  UniqueFd pidfd;  // pidfd_open'ed; readable when the child exits
  UniqueFd stdout_fd, stderr_fd;  // read ends of the child's stdout/stderr
                                  // pipes (O_CLOEXEC, O_NONBLOCK)
};

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  virtual absl::StatusOr<ChildProcess> Spawn(const ProcessSpec& spec) = 0;
};

// Forks from one long-lived thread it owns, because PR_SET_PDEATHSIG fires when
// the *thread* that forked exits: the launcher must live as long as the host
// (its destructor ends that thread, which SIGKILLs every child it started
// that is still running). Spawn() hands the request to that thread and waits.
// In the child only async-signal-safe calls run between fork and exec; an exec
// failure comes back through a CLOEXEC pipe as e.g. NotFound
// "exec /path/x: No such file or directory", with the child already reaped.
class PosixProcessLauncher : public ProcessLauncher {
 public:
  PosixProcessLauncher();
  ~PosixProcessLauncher() override;
  PosixProcessLauncher(const PosixProcessLauncher&) = delete;
  PosixProcessLauncher& operator=(const PosixProcessLauncher&) = delete;

  absl::StatusOr<ChildProcess> Spawn(const ProcessSpec& spec) override;

 private:
  struct Request;

  void Run();
  bool SlotFree() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  Request* pending_ ABSL_GUARDED_BY(mu_) = nullptr;  // owned by the caller
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace loophost::host
