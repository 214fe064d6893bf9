// Implementation of child_process_control.h: pidfd-based waiting, killpg, and
// waitid reaping.
#include "host/child_process_control.h"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "host/sys_pidfd.h"

namespace loophost::host {

absl::Status SignalProcessGroup(const ChildProcess& child, int sig) {
  // pid <= 0 would mean our own group (0) or every process (-1): never.
  if (child.pid <= 0) return absl::OkStatus();
  // The unreaped child holds its pid and its group id, so neither can name an
  // unrelated process here.
  if (::killpg(child.pid, sig) != 0 && errno != ESRCH) {
    return absl::ErrnoToStatus(errno, absl::StrCat("killpg ", child.pid));
  }
  if (::getpgid(child.pid) == child.pid) return absl::OkStatus();
  // The child left its group (or the group is gone): signal it directly.
  int rc = child.pidfd.valid()
               ? ::pidfd_send_signal(child.pidfd.get(), sig, nullptr, 0)
               : ::kill(child.pid, sig);
  if (rc == 0 || errno == ESRCH) return absl::OkStatus();
  return absl::ErrnoToStatus(errno, absl::StrCat("kill ", child.pid));
}

bool WaitForExit(const ChildProcess& child, absl::Duration timeout) {
  if (child.pid <= 0) return true;
  UniqueFd opened;
  int fd = child.pidfd.get();
  if (fd < 0) {
    opened.Reset(::pidfd_open(child.pid, 0));
    if (!opened.valid()) return errno == ESRCH;
    fd = opened.get();
  }
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::Duration left = deadline - absl::Now();
    if (left < absl::ZeroDuration()) left = absl::ZeroDuration();
    int ms = static_cast<int>(
        absl::ToInt64Milliseconds(left + absl::Microseconds(999)));
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, ms);
    if (n > 0) return true;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (absl::Now() >= deadline) return false;
  }
}

std::string DescribeExit(int code, int status) {
  switch (code) {
    case CLD_EXITED:
      return absl::StrCat("exited with code ", status);
    case CLD_KILLED:
    case CLD_DUMPED: {
      const char* name = ::sigdescr_np(status);
      return absl::StrCat("killed by signal ", status, " (",
                          name != nullptr ? name : "unknown", ")",
                          code == CLD_DUMPED ? ", core dumped" : "");
    }
    default:
      return absl::StrCat("ended (code ", code, ", status ", status, ")");
  }
}

std::string ReapChild(ChildProcess& child, int* exit_code, int* term_signal) {
  if (exit_code != nullptr) *exit_code = -1;
  if (term_signal != nullptr) *term_signal = 0;
  if (child.pid <= 0) return "already reaped";
  siginfo_t info = {};
  int rc = -1;
  bool use_pidfd = child.pidfd.valid();
  while (true) {
    rc = use_pidfd
             ? ::waitid(static_cast<idtype_t>(P_PIDFD),
                        static_cast<id_t>(child.pidfd.get()), &info, WEXITED)
             : ::waitid(P_PID, static_cast<id_t>(child.pid), &info, WEXITED);
    if (rc == 0 || errno == EINTR) {
      if (rc == 0) break;
      continue;
    }
    if (!use_pidfd || errno != EINVAL) break;
    use_pidfd = false;  // a kernel without P_PIDFD (< 5.4)
  }
  const int pid = child.pid;
  child.pid = -1;
  child.pidfd.Reset();
  if (rc < 0) {
    return absl::StrCat("could not reap pid ", pid, ": ",
                        ::strerrordesc_np(errno));
  }
  if (info.si_code == CLD_EXITED && exit_code != nullptr) {
    *exit_code = info.si_status;
  }
  if ((info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) &&
      term_signal != nullptr) {
    *term_signal = info.si_status;
  }
  return DescribeExit(info.si_code, info.si_status);
}

std::string TerminateChild(ChildProcess& child, absl::Duration grace,
                           int* exit_code, int* term_signal) {
  // Errors other than "gone" are not actionable here: SIGKILL and the blocking
  // reap below still end the child.
  (void)SignalProcessGroup(child, SIGTERM);
  WaitForExit(child, grace);
  // Before reaping: the zombie still holds the group id, so killpg cannot hit
  // an unrelated group, and grandchildren that ignored SIGTERM die too.
  (void)SignalProcessGroup(child, SIGKILL);
  return ReapChild(child, exit_code, term_signal);
}

}  // namespace loophost::host
