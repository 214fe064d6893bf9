// ptp-parse-bench FILE [--runs N]: how fast ParsePtpLogLine reads a log file on
// one core, next to `wc -l` on the same file. Reads FILE in 1 MiB blocks (as a
// file input would), splits lines, parses each into one reused PtpLogLine; also
// the parser alone over lines held in memory. One JSON object; best of N runs.
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "loops/ptp/ptp_log_line.h"
#include "loops/ptp/ptp_log_parser.h"

extern char** environ;

namespace {

using loophost::loops::ptp::LineKind;
using loophost::loops::ptp::PtpLogLine;

struct Result {
  int64_t lines = 0;
  int64_t offset_lines = 0;
  int64_t malformed = 0;
  int64_t bytes = 0;
  int64_t checksum = 0;  // keeps the parse from being optimised away
  double wall_s = 0;
  double cpu_s = 0;
};

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) +
         static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Reads `path` block by block and calls on_line(line) for every line.
template <typename F>
bool ForEachLine(const char* path, Result* r, F on_line) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  constexpr size_t kBlock = 1 << 20;
  std::vector<char> buf(kBlock + 4096);
  size_t have = 0;  // bytes of an unfinished line at buf[0..have)
  for (;;) {
    if (have == buf.size()) buf.resize(buf.size() * 2);  // a very long line
    const ssize_t n = read(fd, buf.data() + have, buf.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      close(fd);
      return false;
    }
    if (n == 0) break;
    r->bytes += n;
    const char* p = buf.data();
    const char* end = buf.data() + have + static_cast<size_t>(n);
    while (const void* nl = memchr(p, '\n', static_cast<size_t>(end - p))) {
      const char* e = static_cast<const char*>(nl);
      on_line(absl::string_view(p, static_cast<size_t>(e - p)));
      ++r->lines;
      p = e + 1;
    }
    have = static_cast<size_t>(end - p);
    memmove(buf.data(), p, have);
  }
  if (have > 0) {
    on_line(absl::string_view(buf.data(), have));
    ++r->lines;
  }
  close(fd);
  return true;
}

template <typename F>
Result Timed(const char* path, F run) {
  Result r;
  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = ThreadCpuSeconds();
  if (!run(path, &r)) {
    std::fprintf(stderr, "ptp-parse-bench: cannot read %s: %s\n", path,
                 std::strerror(errno));
    std::exit(1);
  }
  r.cpu_s = ThreadCpuSeconds() - cpu_start;
  r.wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return r;
}

Result Parse(const char* path) {
  return Timed(path, [](const char* p, Result* r) {
    PtpLogLine line;
    return ForEachLine(p, r, [&](absl::string_view l) {
      loophost::loops::ptp::ParsePtpLogLine(l, "ptp4l.0.config", &line);
      if (line.kind == LineKind::kOffset) {
        ++r->offset_lines;
        r->checksum += *line.offset_ns;
      } else if (line.kind == LineKind::kMalformed) {
        ++r->malformed;
      }
    });
  });
}

Result SplitOnly(const char* path) {
  return Timed(path, [](const char* p, Result* r) {
    return ForEachLine(p, r, [&](absl::string_view l) {
      r->checksum += static_cast<int64_t>(l.size());
    });
  });
}

// The parser alone: the first `max_lines` lines of `path` held in memory,
// parsed `passes` times (no I/O, no line splitting). Thread CPU seconds per
// line.
double InMemoryNsPerLine(const char* path, size_t max_lines, int passes) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; lines.size() < max_lines && std::getline(in, l);) {
    lines.push_back(std::move(l));
  }
  if (lines.empty()) return 0;
  PtpLogLine line;
  int64_t checksum = 0;
  const double start = ThreadCpuSeconds();
  for (int i = 0; i < passes; ++i) {
    for (const std::string& l : lines) {
      loophost::loops::ptp::ParsePtpLogLine(l, "ptp4l.0.config", &line);
      checksum += line.offset_ns.value_or(0);
    }
  }
  const double seconds = ThreadCpuSeconds() - start;
  if (checksum == 42) std::fprintf(stderr, " ");  // keep `checksum` alive
  return seconds * 1e9 / (static_cast<double>(lines.size()) * passes);
}

// `wc -l FILE`, stdout to /dev/null: wall and CPU (user + system) seconds.
struct WcTime {
  double wall_s = -1;
  double cpu_s = -1;
};
WcTime RunWc(const char* path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  char wc[] = "wc";
  char dash_l[] = "-l";
  std::string file = path;
  char* argv[] = {wc, dash_l, file.data(), nullptr};
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  const int spawned =
      posix_spawnp(&pid, "wc", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return {};
  int status = 0;
  rusage usage{};
  while (wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return {};
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) +
           static_cast<double>(tv.tv_usec) * 1e-6;
  };
  WcTime t;
  t.wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  t.cpu_s = seconds(usage.ru_utime) + seconds(usage.ru_stime);
  return t;
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string l; std::getline(in, l);) {
    if (absl::StartsWith(l, "model name")) {
      const size_t colon = l.find(':');
      if (colon != std::string::npos) return l.substr(colon + 2);
    }
  }
  return "";
}

int Run(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(stderr,
                 "usage: ptp-parse-bench FILE [--runs N]\n"
                 "  FILE: a log, e.g. from loops/ptp/bench/run.sh\n");
    return 2;
  }
  const char* path = argv[1];
  int runs = 3;
  if (argc == 4 && std::strcmp(argv[2], "--runs") == 0) {
    if (!absl::SimpleAtoi(argv[3], &runs) || runs < 1) {
      std::fprintf(stderr, "--runs=%s: want a positive integer\n", argv[3]);
      return 2;
    }
  }

  SplitOnly(path);  // warm the page cache
  Result parse, split;
  WcTime wc;
  for (int i = 0; i < runs; ++i) {
    const Result p = Parse(path);
    if (i == 0 || p.wall_s < parse.wall_s) parse = p;
    const Result s = SplitOnly(path);
    if (i == 0 || s.wall_s < split.wall_s) split = s;
    const WcTime w = RunWc(path);
    if (w.wall_s >= 0 && (wc.wall_s < 0 || w.wall_s < wc.wall_s)) wc = w;
  }

  double in_memory_ns = 0;
  for (int i = 0; i < runs; ++i) {
    const double ns = InMemoryNsPerLine(path, 1000000, 5);
    if (i == 0 || ns < in_memory_ns) in_memory_ns = ns;
  }

  auto per_s = [](int64_t n, double s) {
    return s > 0 ? static_cast<double>(n) / s : 0.0;
  };
  nlohmann::ordered_json j;
  j["file"] = path;
  j["bytes"] = parse.bytes;
  j["lines"] = parse.lines;
  j["offset_lines"] = parse.offset_lines;
  j["malformed_lines"] = parse.malformed;
  j["runs"] = runs;
  j["parse_wall_s"] = parse.wall_s;
  j["parse_cpu_s"] = parse.cpu_s;
  j["parse_lines_per_s"] = per_s(parse.lines, parse.wall_s);
  j["parse_lines_per_cpu_s"] = per_s(parse.lines, parse.cpu_s);
  j["parse_ns_per_line"] =
      parse.lines ? parse.wall_s * 1e9 / static_cast<double>(parse.lines) : 0;
  j["parse_in_memory_cpu_ns_per_line"] = in_memory_ns;
  j["parse_in_memory_lines_per_s"] = in_memory_ns > 0 ? 1e9 / in_memory_ns : 0;
  j["read_split_only_wall_s"] = split.wall_s;
  j["read_split_only_lines_per_s"] = per_s(split.lines, split.wall_s);
  j["wc_l_wall_s"] = wc.wall_s;
  j["wc_l_cpu_s"] = wc.cpu_s;
  j["wc_l_lines_per_s"] = per_s(parse.lines, wc.wall_s);
  j["parse_vs_wc_l"] = wc.wall_s > 0 ? parse.wall_s / wc.wall_s : 0;
  j["parse_cpu_vs_wc_l_cpu"] = wc.cpu_s > 0 ? parse.cpu_s / wc.cpu_s : 0;
  j["checksum"] = parse.checksum;
  j["cpu"] = CpuModel();
  j["build_type"] = LH_BENCH_BUILD_TYPE;
  std::printf("%s\n", j.dump(2).c_str());
  return parse.lines > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {  // JSON output, vectors: bad_alloc
    std::fprintf(stderr, "ptp-parse-bench: %s\n", e.what());
    return 1;
  }
}
