// Implementation of uds_baseline.h. The child only calls read, write and
// _exit (async-signal-safe): the bench process has gRPC threads when it forks.
#include "bench/uds_baseline.h"

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/plugin_harness.h"
#include "bench/stats.h"
#include "common/unique_fd.h"

namespace loophost::bench {
namespace {

bool ReadFull(int fd, char* buf, size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, buf, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

bool WriteFull(int fd, const char* buf, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, buf, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    buf += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

absl::StatusOr<nlohmann::json> UdsPingPong(int payload, int warm_calls,
                                           int calls) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return absl::InternalError(
        absl::StrCat("socketpair: ", std::strerror(errno)));
  }
  UniqueFd ours(fds[0]);
  UniqueFd theirs(fds[1]);
  std::vector<char> buffer(static_cast<size_t>(payload), 'a');
  const pid_t pid = ::fork();
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::close(fds[0]);
    char* buf = buffer.data();
    while (ReadFull(fds[1], buf, buffer.size()) &&
           WriteFull(fds[1], buf, buffer.size())) {
    }
    ::_exit(0);
  }
  theirs.Reset();
  std::vector<char> in(buffer.size());
  std::vector<double> latencies_us;
  latencies_us.reserve(static_cast<size_t>(calls));
  bool ok = true;
  for (int i = 0; ok && i < warm_calls + calls; ++i) {
    const BenchClock::time_point t0 = BenchClock::now();
    ok = WriteFull(ours.get(), buffer.data(), buffer.size()) &&
         ReadFull(ours.get(), in.data(), in.size());
    if (i >= warm_calls) latencies_us.push_back(MillisSince(t0) * 1000);
  }
  ours.Reset();  // EOF: the child exits
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!ok) return absl::InternalError("ping-pong: the echo child went away");
  return Summarize(std::move(latencies_us));
}

}  // namespace loophost::bench
