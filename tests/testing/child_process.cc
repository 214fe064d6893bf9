// Implementation of the test-side process helpers (child_process.h).
#include "tests/testing/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"

namespace loophost::testing {
namespace {

constexpr absl::Duration kPollInterval = absl::Milliseconds(10);

// glibc 2.36's <sys/pidfd.h> lacks extern "C" (see host/sys_pidfd.h); the raw
// system calls need no header.
int PidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}
int PidfdSendSignal(int pidfd, int signal) {
  return static_cast<int>(
      ::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0));
}

// Waits up to `timeout` for `fd` to become readable (a pidfd: the process
// exited). True if it did.
bool PollReadable(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    int ms = static_cast<int>(std::max<int64_t>(
        0, absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1)))));
    pollfd pfd{fd, POLLIN, 0};
    int n = ::poll(&pfd, 1, ms);
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

ExitStatus FromWaitStatus(int status) {
  ExitStatus out;
  if (WIFEXITED(status)) {
    out.exited = true;
    out.code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out.signal = WTERMSIG(status);
  }
  return out;
}

// Child side of Spawn, between fork and exec: async-signal-safe calls only.
// Reports a failing step's errno through `report_fd` (CLOEXEC) and _exits.
[[noreturn]] void ExecChild(const char* path, char* const* argv,
                            char* const* envp, const char* stdout_path,
                            const char* stderr_path, pid_t parent,
                            int report_fd) {
  auto fail = [report_fd](int step) {
    int data[2] = {step, errno};
    (void)!::write(report_fd, data, sizeof(data));
    ::_exit(127);
  };
  if (::setpgid(0, 0) != 0) fail(1);
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail(2);
  if (::getppid() != parent) ::_exit(127);  // the test died meanwhile
  int in = ::open("/dev/null", O_RDONLY);
  if (in < 0 || ::dup2(in, STDIN_FILENO) < 0) fail(3);
  int out = ::open(stdout_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out < 0 || ::dup2(out, STDOUT_FILENO) < 0) fail(4);
  int err = ::open(stderr_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (err < 0 || ::dup2(err, STDERR_FILENO) < 0) fail(5);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl;
  ::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  }
  ::execve(path, argv, envp);
  fail(6);
  ::_exit(127);
}

const char* StepName(int step) {
  switch (step) {
    case 1:
      return "setpgid";
    case 2:
      return "prctl(PR_SET_PDEATHSIG)";
    case 3:
      return "open /dev/null";
    case 4:
      return "open stdout file";
    case 5:
      return "open stderr file";
    case 6:
      return "exec";
  }
  return "spawn";
}

}  // namespace

::testing::AssertionResult WaitFor(const std::function<bool()>& condition,
                                   absl::Duration timeout,
                                   const std::string& what) {
  const absl::Time start = absl::Now();
  const absl::Time deadline = start + timeout;
  while (true) {
    if (condition()) return ::testing::AssertionSuccess();
    if (absl::Now() >= deadline) break;
    absl::SleepFor(std::min(kPollInterval, deadline - absl::Now()));
  }
  return ::testing::AssertionFailure()
         << "timed out after " << absl::FormatDuration(absl::Now() - start)
         << " waiting for: " << what;
}

// ---- TempDir ---------------------------------------------------------------

absl::StatusOr<TempDir> TempDir::Create(const std::string& prefix) {
  const char* base = ::getenv("TMPDIR");
  std::string tmpl =
      absl::StrCat((base != nullptr && *base != '\0') ? base : "/tmp", "/",
                   prefix, "XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::ErrnoToStatus(errno, absl::StrCat("mkdtemp ", tmpl));
  }
  return TempDir(std::move(tmpl));
}

TempDir::TempDir(TempDir&& other) noexcept
    : path_(std::exchange(other.path_, std::string())), keep_(other.keep_) {}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    TempDir old(std::move(*this));
    path_ = std::exchange(other.path_, std::string());
    keep_ = other.keep_;
  }
  return *this;
}

TempDir::~TempDir() {
  if (path_.empty() || keep_) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::Join(const std::string& name) const {
  return absl::StrCat(path_, "/", name);
}

// ---- ExitStatus ------------------------------------------------------------

std::string ExitStatus::ToString() const {
  if (exited) return absl::StrCat("exited with code ", code);
  return absl::StrCat("killed by signal ", signal, " (", ::strsignal(signal),
                      ")");
}

// ---- ChildProcess ----------------------------------------------------------

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    const ChildOptions& options) {
  if (options.argv.empty()) {
    return absl::InvalidArgumentError("ChildProcess::Spawn: empty argv");
  }
  // Everything the child needs is prepared before fork.
  std::vector<char*> argv;
  for (const std::string& a : options.argv) {
    argv.push_back(const_cast<char*>(a.c_str()));
  }
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : options.env) {
    envp.push_back(const_cast<char*>(e.c_str()));
  }
  envp.push_back(nullptr);
  const std::string& path = options.argv[0];
  const char* out =
      options.stdout_path.empty() ? "/dev/null" : options.stdout_path.c_str();
  const char* err =
      options.stderr_path.empty() ? "/dev/null" : options.stderr_path.c_str();

  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0)
    return absl::ErrnoToStatus(errno, "pipe2");
  UniqueFd report_read(report[0]);
  UniqueFd report_write(report[1]);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  if (pid == 0) {
    ExecChild(path.c_str(), argv.data(), envp.data(), out, err, parent,
              report_write.get());
  }
  // Both sides set the group, so a signal to -pid right after Spawn returns
  // reaches the child (whichever side runs first).
  (void)::setpgid(pid, pid);
  report_write.Reset();
  int data[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(report_read.get(), data, sizeof(data));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(data))) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return absl::ErrnoToStatus(data[1],
                               absl::StrCat(StepName(data[0]), " ", path));
  }
  UniqueFd pidfd(PidfdOpen(pid));
  if (!pidfd.valid()) {
    absl::Status status = absl::ErrnoToStatus(errno, "pidfd_open");
    ::kill(-pid, SIGKILL);
    int ignored = 0;
    ::waitpid(pid, &ignored, 0);
    return status;
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, std::move(pidfd)));
}

ChildProcess::~ChildProcess() {
  if (!exit_status_.has_value()) KillAndReap();
}

bool ChildProcess::TryReap() {
  if (exit_status_.has_value()) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    exit_status_ = FromWaitStatus(status);
    pidfd_.Reset();
    return true;
  }
  if (r < 0) {  // ECHILD: someone else reaped it; nothing to learn
    exit_status_ = ExitStatus{};
    pidfd_.Reset();
    return true;
  }
  return false;
}

bool ChildProcess::running() { return !TryReap(); }

absl::Status ChildProcess::Signal(int signal) {
  if (exit_status_.has_value()) return absl::OkStatus();
  if (PidfdSendSignal(pidfd_.get(), signal) != 0) {
    return absl::ErrnoToStatus(errno,
                               absl::StrCat("signal ", signal, " to ", pid_));
  }
  return absl::OkStatus();
}

absl::Status ChildProcess::SignalGroup(int signal) {
  // A process group id is not reused while any member exists, so this only
  // reaches the child and what stayed in its group.
  if (::kill(-pid_, signal) != 0 && errno != ESRCH) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat("signal ", signal, " to group ", pid_));
  }
  return absl::OkStatus();
}

absl::StatusOr<ExitStatus> ChildProcess::Wait(absl::Duration timeout) {
  if (TryReap()) return *exit_status_;
  if (PollReadable(pidfd_.get(), timeout) && TryReap()) return *exit_status_;
  return absl::DeadlineExceededError(absl::StrCat(
      "pid ", pid_, " still running after ", absl::FormatDuration(timeout)));
}

ExitStatus ChildProcess::KillAndReap() {
  (void)SignalGroup(SIGKILL);
  if (!exit_status_.has_value()) {
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &status, 0);
    } while (r < 0 && errno == EINTR);
    exit_status_ = r == pid_ ? FromWaitStatus(status) : ExitStatus{};
    pidfd_.Reset();
  }
  return *exit_status_;
}

// ---- ForeignProcess --------------------------------------------------------

absl::StatusOr<ForeignProcess> ForeignProcess::Open(pid_t pid) {
  UniqueFd pidfd(PidfdOpen(pid));
  if (!pidfd.valid()) {
    return absl::ErrnoToStatus(errno, absl::StrCat("pidfd_open ", pid));
  }
  return ForeignProcess(pid, std::move(pidfd));
}

bool ForeignProcess::exited() const {
  return PollReadable(pidfd_.get(), absl::ZeroDuration());
}

bool ForeignProcess::WaitExited(absl::Duration timeout) const {
  return PollReadable(pidfd_.get(), timeout);
}

absl::Status ForeignProcess::Signal(int signal) const {
  if (PidfdSendSignal(pidfd_.get(), signal) != 0 && errno != ESRCH) {
    return absl::ErrnoToStatus(errno,
                               absl::StrCat("signal ", signal, " to ", pid_));
  }
  return absl::OkStatus();
}

// ---- files -----------------------------------------------------------------

RunResult RunToExit(ChildOptions options, const TempDir& dir,
                    absl::Duration timeout) {
  static std::atomic<int> runs{0};
  const int n = ++runs;
  options.stdout_path = dir.Join(absl::StrCat("run", n, ".out"));
  options.stderr_path = dir.Join(absl::StrCat("run", n, ".err"));
  RunResult result;
  auto child = ChildProcess::Spawn(options);
  EXPECT_TRUE(child.ok()) << child.status();
  if (!child.ok()) return result;
  auto status = (*child)->Wait(timeout);
  EXPECT_TRUE(status.ok()) << status.status();
  if (status.ok()) result.status = *status;
  result.out = ReadFileOrEmpty(options.stdout_path);
  result.err = ReadFileOrEmpty(options.stderr_path);
  return result;
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string LastLines(const std::string& text, size_t max_lines) {
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  size_t lines = 0;
  while (pos > 0) {
    size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    if (++lines == max_lines) return text.substr(nl + 1);
    pos = nl;
  }
  return text;
}

}  // namespace loophost::testing
