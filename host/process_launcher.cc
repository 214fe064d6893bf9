// PosixProcessLauncher: fork + execve from one dedicated thread. Everything the
// child needs (argv, envp, fds, signal sets) is prepared before fork; the child
// then runs only async-signal-safe calls (see ChildAfterFork).
#include "host/process_launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "host/sys_pidfd.h"

namespace loophost::host {
namespace {

// What failed in the child before exec, reported through the exec-error pipe.
enum ChildStep : int {
  kStepExec = 0,
  kStepSetpgid,
  kStepDup,
  kStepCloseFds,
  kStepSigmask,
};

const char* ChildStepName(int step) {
  switch (step) {
    case kStepSetpgid:
      return "setpgid";
    case kStepDup:
      return "dup2";
    case kStepCloseFds:
      return "close_range";
    case kStepSigmask:
      return "sigprocmask";
    default:
      return "exec";
  }
}

struct ChildReport {
  int step;
  int error;
};

// Everything the child uses, built before fork so the child never allocates.
struct ChildSetup {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  int stdin_fd = -1;   // /dev/null
  int stdout_fd = -1;  // write end of the stdout pipe
  int stderr_fd = -1;  // write end of the stderr pipe
  int report_fd = -1;  // write end of the CLOEXEC exec-error pipe
  pid_t parent = -1;   // getpid() of the host
  int max_fd = 1024;   // for the close() fallback when close_range is absent
  sigset_t empty_mask;
};

[[noreturn]] void ReportAndExit(int report_fd, int step, int error) {
  ChildReport report{step, error};
  // A pipe write of 8 bytes is atomic; signals are blocked, so no EINTR.
  ssize_t ignored = ::write(report_fd, &report, sizeof(report));
  (void)ignored;
  ::_exit(127);
}

// Runs in the child between fork and exec: async-signal-safe calls only. The
// forking thread blocks all signals, so the child starts with them blocked and
// nothing can run a handler inherited from the host before the reset below.
[[noreturn]] void ChildAfterFork(const ChildSetup& s) {
  struct sigaction default_action = {};
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &default_action, nullptr);  // EINVAL for glibc-internal
  }
  if (::setpgid(0, 0) != 0) ReportAndExit(s.report_fd, kStepSetpgid, errno);
  // The signal fires when the forking thread exits; if the host already died
  // between fork and prctl, there is nobody left to deliver it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != s.parent) ::_exit(127);
  if (::dup2(s.stdin_fd, STDIN_FILENO) < 0 ||
      ::dup2(s.stdout_fd, STDOUT_FILENO) < 0 ||
      ::dup2(s.stderr_fd, STDERR_FILENO) < 0) {
    ReportAndExit(s.report_fd, kStepDup, errno);
  }
  // Mark every other fd close-on-exec rather than closing it now: the report
  // pipe must stay open until execve succeeds.
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    bool closed = true;
    if (s.report_fd > 3 &&
        ::close_range(3, static_cast<unsigned>(s.report_fd) - 1, 0) != 0) {
      closed = false;
    }
    if (closed &&
        ::close_range(static_cast<unsigned>(s.report_fd) + 1, ~0U, 0) != 0) {
      closed = false;
    }
    if (!closed) {  // kernel without close_range (< 5.9)
      for (int fd = 3; fd < s.max_fd; ++fd) {
        if (fd != s.report_fd) ::close(fd);
      }
    }
  }
  if (::sigprocmask(SIG_SETMASK, &s.empty_mask, nullptr) != 0) {
    ReportAndExit(s.report_fd, kStepSigmask, errno);
  }
  ::execve(s.path, s.argv, s.envp);
  ReportAndExit(s.report_fd, kStepExec, errno);
}

// The child's fds are dup2'ed onto 0/1/2, so none of them may already be one of
// those (a host started with stdio closed could get them from pipe2/open).
absl::Status MoveAboveStdio(UniqueFd& fd) {
  if (fd.get() > STDERR_FILENO) return absl::OkStatus();
  int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  if (moved < 0) return absl::ErrnoToStatus(errno, "fcntl(F_DUPFD_CLOEXEC)");
  fd.Reset(moved);
  return absl::OkStatus();
}

struct Pipe {
  UniqueFd read, write;
};

absl::StatusOr<Pipe> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe2");
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1])};
  LH_RETURN_IF_ERROR(MoveAboveStdio(p.write));
  return p;
}

absl::Status SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return absl::ErrnoToStatus(errno, "fcntl(O_NONBLOCK)");
  }
  return absl::OkStatus();
}

void ReapBlocking(pid_t pid) {
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

absl::StatusOr<ChildProcess> ForkAndExec(const ProcessSpec& spec) {
  if (spec.path.empty()) {
    return absl::InvalidArgumentError("empty executable path");
  }
  for (const std::string& kv : spec.env) {
    if (!absl::StrContains(kv, '=') || kv.front() == '=') {
      return absl::InvalidArgumentError(
          absl::StrCat("environment entry \"", kv, "\" is not KEY=VALUE"));
    }
  }
  std::vector<char*> argv;
  if (spec.argv.empty()) {
    argv.push_back(const_cast<char*>(spec.path.c_str()));
  } else {
    for (const std::string& a : spec.argv) {
      argv.push_back(const_cast<char*>(a.c_str()));
    }
  }
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& kv : spec.env) {
    envp.push_back(const_cast<char*>(kv.c_str()));
  }
  envp.push_back(nullptr);

  UniqueFd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null.valid()) return absl::ErrnoToStatus(errno, "open /dev/null");
  LH_RETURN_IF_ERROR(MoveAboveStdio(dev_null));
  LH_ASSIGN_OR_RETURN(Pipe out, MakePipe());
  LH_ASSIGN_OR_RETURN(Pipe err, MakePipe());
  LH_ASSIGN_OR_RETURN(Pipe report, MakePipe());
  LH_RETURN_IF_ERROR(SetNonBlocking(out.read.get()));
  LH_RETURN_IF_ERROR(SetNonBlocking(err.read.get()));

  ChildSetup setup;
  setup.path = spec.path.c_str();
  setup.argv = argv.data();
  setup.envp = envp.data();
  setup.stdin_fd = dev_null.get();
  setup.stdout_fd = out.write.get();
  setup.stderr_fd = err.write.get();
  setup.report_fd = report.write.get();
  setup.parent = ::getpid();
  const int64_t open_max = ::sysconf(_SC_OPEN_MAX);
  setup.max_fd =
      open_max > 0 && open_max < INT_MAX ? static_cast<int>(open_max) : 65536;
  sigemptyset(&setup.empty_mask);

  pid_t pid = ::fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) ChildAfterFork(setup);

  dev_null.Reset();
  out.write.Reset();
  err.write.Reset();
  report.write.Reset();

  // EOF = execve succeeded (the CLOEXEC pipe closed); a report = it failed.
  ChildReport child_report{};
  size_t got = 0;
  while (got < sizeof(child_report)) {
    ssize_t n =
        ::read(report.read.get(), reinterpret_cast<char*>(&child_report) + got,
               sizeof(child_report) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  if (got == sizeof(child_report)) {
    ReapBlocking(pid);
    if (child_report.step == kStepExec) {
      return absl::ErrnoToStatus(child_report.error,
                                 absl::StrCat("exec ", spec.path));
    }
    return absl::ErrnoToStatus(child_report.error,
                               absl::StrCat("spawn ", spec.path, ": ",
                                            ChildStepName(child_report.step)));
  }

  // No one else reaps our children, so the pid cannot be reused before this.
  UniqueFd pidfd(::pidfd_open(pid, 0));
  if (!pidfd.valid()) {
    absl::Status status = absl::ErrnoToStatus(errno, "pidfd_open");
    ::kill(pid, SIGKILL);
    ReapBlocking(pid);
    return status;
  }
  ChildProcess child;
  child.pid = pid;
  child.pidfd = std::move(pidfd);
  child.stdout_fd = std::move(out.read);
  child.stderr_fd = std::move(err.read);
  return child;
}

}  // namespace

struct PosixProcessLauncher::Request {
  const ProcessSpec* spec;
  absl::StatusOr<ChildProcess> result = absl::UnknownError("not run");
  bool done = false;
};

PosixProcessLauncher::PosixProcessLauncher() : thread_([this] { Run(); }) {}

PosixProcessLauncher::~PosixProcessLauncher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::StatusOr<ChildProcess> PosixProcessLauncher::Spawn(
    const ProcessSpec& spec) {
  Request request{&spec};
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(this, &PosixProcessLauncher::SlotFree));
  if (stopping_) return absl::FailedPreconditionError("launcher is stopping");
  pending_ = &request;
  mu_.Await(absl::Condition(&request.done));
  return std::move(request.result);
}

bool PosixProcessLauncher::SlotFree() const {
  return pending_ == nullptr || stopping_;
}

bool PosixProcessLauncher::HasWork() const {
  return pending_ != nullptr || stopping_;
}

void PosixProcessLauncher::Run() {
  // Children start with this mask (reset just before exec), so no host signal
  // handler can run in a child between fork and exec.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  absl::MutexLock lock(&mu_);
  while (true) {
    mu_.Await(absl::Condition(this, &PosixProcessLauncher::HasWork));
    if (pending_ == nullptr) return;  // stopping, nothing queued
    Request* request = pending_;
    mu_.Unlock();
    absl::StatusOr<ChildProcess> result = ForkAndExec(*request->spec);
    mu_.Lock();
    request->result = std::move(result);
    request->done = true;
    pending_ = nullptr;
  }
}

}  // namespace loophost::host
