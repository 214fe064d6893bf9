// Test-only helpers for the process layer's tests: reading a child's pipe with
// a deadline, the shell specs the tests spawn, and the test process's RSS.
// Header-only; no shared state.
#pragma once

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "host/process_launcher.h"

namespace loophost::host::testing {

inline constexpr char kTestPath[] = "PATH=/usr/bin:/bin";

// `/bin/sh -c script` with only PATH in its environment.
inline ProcessSpec Shell(std::string script) {
  return ProcessSpec{"/bin/sh", {"sh", "-c", std::move(script)}, {kTestPath}};
}

// Reads a non-blocking fd until EOF, or nullopt at the deadline.
inline std::optional<std::string> ReadUntilEof(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return out;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return std::nullopt;
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
  }
}

// Reads one '\n'-terminated line (without it) from a non-blocking fd, byte by
// byte so nothing after it is consumed; nullopt at EOF or the deadline.
inline std::optional<std::string> ReadLine(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string line;
  while (true) {
    char c;
    ssize_t n = ::read(fd, &c, 1);
    if (n == 1) {
      if (c == '\n') return line;
      line.push_back(c);
      continue;
    }
    if (n == 0) return std::nullopt;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return std::nullopt;
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
  }
}

// Resident set size of this process, from /proc/self/status (VmRSS, kB).
inline int64_t RssBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    std::vector<std::string> parts =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t kb = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kb)) return kb * 1024;
  }
  return -1;
}

}  // namespace loophost::host::testing
