// Implementation of handshake.h.
#include "host/handshake.h"

#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "host/child_process_control.h"
#include "host/plugin_log.h"

namespace loophost::host {
namespace {

absl::Status Invalid(absl::string_view reason) {
  return absl::InvalidArgumentError(reason);
}

// "<digits>|": what go-plugin's client also treats as the handshake line.
bool LooksLikeHandshake(absl::string_view line) {
  size_t i = 0;
  while (i < line.size() && absl::ascii_isdigit(line[i])) ++i;
  return i > 0 && i < line.size() && line[i] == '|';
}

// Exit status of a child that has exited, without reaping it.
std::string PeekExit(int pidfd) {
  siginfo_t info = {};
  if (::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info,
               WEXITED | WNOHANG | WNOWAIT) != 0 ||
      info.si_pid == 0) {
    return "exit status unknown";
  }
  return DescribeExit(info.si_code, info.si_status);
}

// Callers pass what is left of a start deadline (4.98731s): say "5s".
absl::Duration RoundForHumans(absl::Duration d) {
  absl::Duration unit =
      d >= absl::Seconds(1) ? absl::Milliseconds(100) : absl::Milliseconds(1);
  absl::Duration rounded = absl::Floor(d + unit / 2, unit);
  return rounded > absl::ZeroDuration() ? rounded : d;
}

}  // namespace

absl::StatusOr<Handshake> ParseHandshakeLine(absl::string_view line) {
  line = absl::StripAsciiWhitespace(line);
  std::vector<absl::string_view> parts = absl::StrSplit(line, '|');
  // 5 fields: go-plugin servers from before the CERT field (2018).
  if (parts.size() < 5 || parts.size() > 7) {
    return Invalid(absl::StrCat(
        "handshake has ", parts.size(),
        " fields, want CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT[|MUX]"));
  }
  Handshake h;
  if (!absl::SimpleAtoi(parts[0], &h.core_version)) {
    return Invalid(absl::StrCat("core protocol version \"", parts[0],
                                "\" is not a number"));
  }
  if (h.core_version != kCoreProtocolVersion) {
    return Invalid(absl::StrCat("unsupported core protocol version ",
                                h.core_version, ", host speaks ",
                                kCoreProtocolVersion));
  }
  if (!absl::SimpleAtoi(parts[1], &h.app_version)) {
    return Invalid(absl::StrCat("app protocol version \"", parts[1],
                                "\" is not a number"));
  }
  if (h.app_version != kAppProtocolVersion) {
    return Invalid(absl::StrCat("version mismatch: plugin speaks app protocol ",
                                h.app_version, ", host ", kAppProtocolVersion));
  }
  h.network = std::string(parts[2]);
  if (h.network != "unix" && h.network != "tcp") {
    return Invalid(absl::StrCat("network \"", parts[2],
                                "\" is not supported (want unix or tcp)"));
  }
  h.address = std::string(parts[3]);
  if (h.address.empty()) return Invalid("empty address");
  h.protocol = std::string(parts[4]);
  if (h.protocol == "netrpc" || h.protocol.empty()) {
    return Invalid("netrpc plugins are not supported");
  }
  if (h.protocol != "grpc") {
    return Invalid(absl::StrCat("protocol \"", parts[4],
                                "\" is not supported (want grpc)"));
  }
  if (parts.size() >= 6) h.cert = std::string(parts[5]);
  if (parts.size() == 7) h.multiplex = parts[6] == "true";
  return h;
}

HandshakeWaiter::HandshakeWaiter(std::string plugin)
    : plugin_(std::move(plugin)),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

void HandshakeWaiter::OnStdoutLine(absl::string_view line) {
  enum { kSettled, kJunk, kAfter } what;
  {
    absl::MutexLock lock(&mu_);
    if (outcome_.has_value()) {
      what = kAfter;
    } else if (LooksLikeHandshake(absl::StripLeadingAsciiWhitespace(line))) {
      outcome_ = ParseHandshakeLine(line);
      what = kSettled;
    } else {
      ++lines_before_;
      bytes_before_ += line.size() + 1;
      if (lines_before_ > kMaxLinesBeforeHandshake ||
          bytes_before_ > kMaxBytesBeforeHandshake) {
        outcome_ = absl::FailedPreconditionError(
            absl::StrCat("no handshake in the first ", lines_before_,
                         " lines (", bytes_before_, " bytes) of stdout"));
        what = kSettled;
      } else {
        what = kJunk;
      }
    }
  }
  switch (what) {
    case kJunk:
      LogInfo("stdout before handshake",
              {{"plugin", plugin_}, {"line", std::string(line)}});
      break;
    case kAfter:
      RelogPluginLine(plugin_, "stdout", line);
      break;
    case kSettled: {
      uint64_t one = 1;
      ssize_t ignored = ::write(wake_fd_.get(), &one, sizeof(one));
      (void)ignored;
      break;
    }
  }
}

absl::StatusOr<Handshake> HandshakeWaiter::Wait(int pidfd,
                                                absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (outcome_.has_value()) return *outcome_;
    }
    pollfd fds[2] = {{wake_fd_.get(), POLLIN, 0}, {pidfd, POLLIN, 0}};
    absl::Duration left = deadline - absl::Now();
    if (left < absl::ZeroDuration()) left = absl::ZeroDuration();
    int ms = static_cast<int>(
        absl::ToInt64Milliseconds(left + absl::Microseconds(999)));
    int n = ::poll(fds, pidfd >= 0 ? 2 : 1, ms);
    if (n < 0 && errno != EINTR) {
      return absl::InternalError(
          absl::StrCat("poll: ", ::strerrordesc_np(errno)));
    }
    if (n > 0 && (fds[0].revents & POLLIN) != 0) continue;  // outcome settled
    absl::MutexLock lock(&mu_);
    if (outcome_.has_value()) return *outcome_;
    if (n > 0 && fds[1].revents != 0) {
      std::string detail = PeekExit(pidfd);
      if (lines_before_ > 0) {
        absl::StrAppend(&detail, "; ", lines_before_, " other lines on stdout");
      }
      outcome_ = absl::FailedPreconditionError(
          absl::StrCat("exited before the handshake (", detail, ")"));
      return *outcome_;
    }
    if (absl::Now() >= deadline) {
      outcome_ = absl::DeadlineExceededError(
          absl::StrCat("no handshake within ",
                       absl::FormatDuration(RoundForHumans(timeout))));
      return *outcome_;
    }
  }
}

}  // namespace loophost::host
