// loop-ptp-bench: how fast the PTP monitor takes lines on one core (parse +
// clock state machine + metrics, as the live loop does per line), how its
// memory behaves over a day's worth of lines, and how much CPU the live loop
// uses while no line arrives. One JSON object on stdout.
//   loop-ptp-bench --file FILE [--runs 3]      throughput over FILE
//   loop-ptp-bench --day [--rate 16]           VmRSS over a day of lines
//   loop-ptp-bench --idle 10                   CPU of an idle loop (seconds)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "loops/ptp/ptp_loop.h"
#include "loops/ptp/ptp_metrics.h"
#include "loops/ptp/ptp_monitor.h"
#include "loops/sdk/loop_server.h"

namespace {

namespace ptp = loophost::loops::ptp;
using Clock = std::chrono::steady_clock;

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

long StatusKb(const char* key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + strlen(key));
  }
  return -1;
}

ptp::PtpThresholds Thresholds() {
  ptp::PtpThresholds t;  // the real logs are software-timestamp noise
  t.max_offset_ns = 3000;
  t.min_offset_ns = -3000;
  return t;
}

struct Monitor {
  explicit Monitor(bool with_metrics) {
    if (with_metrics) {
      metrics = *ptp::PtpMetrics::Create(registry, "bench-node", Thresholds(),
                                         ptp::kDefaultConfigName);
    }
    ptp::PtpMonitor::Options options;
    options.node = "bench-node";
    options.thresholds = Thresholds();
    monitor = std::make_unique<ptp::PtpMonitor>(
        options,
        [this](ptp::PtpResource, loophost::v1::CloudEvent) { ++events; },
        metrics.get());
  }
  prometheus::Registry registry;
  std::unique_ptr<ptp::PtpMetrics> metrics;
  std::unique_ptr<ptp::PtpMonitor> monitor;
  uint64_t events = 0;
};

// Lines of `data` fed to a fresh monitor; the best of `runs`.
nlohmann::json Throughput(const std::string& path, int runs) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {{"error", absl::StrCat(path, ": cannot open")}};
  struct stat st {};
  ::fstat(fd, &st);
  size_t size = static_cast<size_t>(st.st_size);
  const char* data = static_cast<const char*>(
      ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0));
  ::close(fd);
  if (data == MAP_FAILED) return {{"error", "mmap failed"}};
  std::vector<absl::string_view> lines;
  for (size_t pos = 0; pos < size;) {
    const char* nl =
        static_cast<const char*>(std::memchr(data + pos, '\n', size - pos));
    size_t end = nl == nullptr ? size : static_cast<size_t>(nl - data);
    lines.emplace_back(data + pos, end - pos);
    pos = end + 1;
  }
  nlohmann::json out = {
      {"file", path}, {"lines", lines.size()}, {"bytes", size}};
  const absl::Time now = absl::Now();
  for (bool with_metrics : {false, true}) {
    double best = 0, best_cpu = 0;
    uint64_t events = 0;
    for (int r = 0; r < runs; ++r) {
      Monitor m(with_metrics);
      // In batches of one 64 KiB read, as the live input hands them over.
      constexpr size_t kBatch = 64 * 1024 / 80;
      std::vector<absl::string_view> batch;
      batch.reserve(kBatch);
      auto start = Clock::now();
      double cpu_start = ThreadCpuSeconds();
      for (size_t i = 0; i < lines.size(); i += kBatch) {
        size_t end = std::min(lines.size(), i + kBatch);
        batch.assign(lines.begin() + static_cast<ptrdiff_t>(i),
                     lines.begin() + static_cast<ptrdiff_t>(end));
        m.monitor->ProcessLines(batch, now);
      }
      double s = std::chrono::duration<double>(Clock::now() - start).count();
      double cpu = ThreadCpuSeconds() - cpu_start;
      best = std::max(best, static_cast<double>(lines.size()) / s);
      best_cpu = std::max(best_cpu, static_cast<double>(lines.size()) / cpu);
      events = m.events;
    }
    // Wall clock, and per second of the thread's CPU time (the machine may
    // be shared: the latter is what one core does).
    out[with_metrics ? "parse_state_metrics_lines_per_s"
                     : "parse_state_lines_per_s"] = best;
    out[with_metrics ? "parse_state_metrics_lines_per_cpu_s"
                     : "parse_state_lines_per_cpu_s"] = best_cpu;
    out["events"] = events;
  }
  // `wc -l` on the same file, for scale (wall clock, and its CPU time).
  auto children_cpu = [] {
    rusage u{};
    getrusage(RUSAGE_CHILDREN, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
  };
  double wc_best = 1e9, wc_cpu_best = 1e9;
  int rc = 0;
  for (int r = 0; r < runs; ++r) {
    double c0 = children_cpu();
    auto start = Clock::now();
    std::string cmd = absl::StrCat("wc -l < '", path, "' > /dev/null");
    rc = std::system(cmd.c_str());
    wc_best = std::min(
        wc_best, std::chrono::duration<double>(Clock::now() - start).count());
    wc_cpu_best = std::min(wc_cpu_best, children_cpu() - c0);
  }
  out["wc_l_s"] = wc_best;
  out["wc_l_cpu_s"] = wc_cpu_best;
  out["wc_l_rc"] = rc;
  out["wc_l_lines_per_s"] = static_cast<double>(lines.size()) / wc_best;
  out["wc_l_lines_per_cpu_s"] =
      static_cast<double>(lines.size()) / std::max(wc_cpu_best, 1e-9);
  ::munmap(const_cast<char*>(data), size);
  return out;
}

// A day (86400 s of log time) of offset lines at `rate` per second, with a
// grandmaster loss every hour: VmRSS every 10% of the way.
nlohmann::json Day(int rate) {
  Monitor m(true);
  std::vector<long> rss;
  const int64_t total = int64_t{86400} * rate;
  char line[160];
  long before = StatusKb("VmRSS:");
  auto start = Clock::now();
  for (int64_t i = 0; i < total; ++i) {
    double t = 1000.0 + static_cast<double>(i) / rate;
    int64_t second = static_cast<int64_t>(t);
    int offset = static_cast<int>((i * 7919) % 2001) - 1000;
    if (second % 3600 == 0 && i % rate == 0) {
      std::snprintf(line, sizeof(line),
                    "ptp4l[%.3f]: [ptp4l.0.config:5] port 1 (ens1f0): SLAVE "
                    "to FAULTY on FAULT_DETECTED (FT_UNSPECIFIED)",
                    t);
      m.monitor->ReplayLine(line);
      std::snprintf(line, sizeof(line),
                    "ptp4l[%.3f]: [ptp4l.0.config:5] port 1 (ens1f0): "
                    "UNCALIBRATED to SLAVE on MASTER_CLOCK_SELECTED",
                    t + 10);
      m.monitor->ReplayLine(line);
    }
    std::snprintf(line, sizeof(line),
                  "ptp4l[%.3f]: [ptp4l.0.config:6] master offset %10d s2 freq "
                  "%+7d path delay %9d",
                  t, offset, offset / 3, 2500 + offset / 10);
    m.monitor->ReplayLine(line);
    if (i % rate == 0) {
      std::snprintf(line, sizeof(line),
                    "phc2sys[%.3f]: [ptp4l.0.config:6] CLOCK_REALTIME phc "
                    "offset %9d s2 freq %+7d delay %6d",
                    t, offset / 2, offset, 500);
      m.monitor->ReplayLine(line);
    }
    if (i % (total / 10) == 0) rss.push_back(StatusKb("VmRSS:"));
  }
  rss.push_back(StatusKb("VmRSS:"));
  double s = std::chrono::duration<double>(Clock::now() - start).count();
  return {{"log_seconds", 86400},
          {"offset_lines", total},
          {"rate_per_s", rate},
          {"events", m.events},
          {"vm_rss_kb_before", before},
          {"vm_rss_kb_every_10pct", rss},
          {"vm_hwm_kb", StatusKb("VmHWM:")},
          {"wall_s", s}};
}

// Ticks of CPU of the whole process and of the input thread ("ptp-input")
// over `seconds` while the live loop waits for lines that do not come.
nlohmann::json Idle(int seconds) {
  char dir[] = "/tmp/lh-ptp-idle-XXXXXX";
  if (::mkdtemp(dir) == nullptr) return {{"error", "mkdtemp"}};
  auto server = loophost::sdk::LoopServer::StartInProcess(
      ptp::MakePtpLoop(),
      {{"NODE_NAME", "bench-node"},
       {"PTP_LOG_SOCKET", absl::StrCat(dir, "/events.sock")},
       {"LOOP_STATE_DIR", absl::StrCat(dir, "/state")}});
  if (!server.ok()) return {{"error", server.status().ToString()}};
  std::this_thread::sleep_for(std::chrono::seconds(1));  // settle
  auto input_ticks = [] {
    long ticks = -1;
    std::error_code ec;
    for (const auto& e :
         std::filesystem::directory_iterator("/proc/self/task", ec)) {
      std::ifstream comm(e.path() / "comm");
      std::string name;
      std::getline(comm, name);
      if (name != "ptp-input") continue;
      std::ifstream stat(e.path() / "stat");
      std::string text((std::istreambuf_iterator<char>(stat)), {});
      std::istringstream fields(text.substr(text.rfind(')') + 2));
      std::string f;
      long utime = 0, stime = 0;
      for (int i = 3; i <= 15 && fields >> f; ++i) {
        if (i == 14) utime = std::atol(f.c_str());
        if (i == 15) stime = std::atol(f.c_str());
      }
      ticks = utime + stime;
    }
    return ticks;
  };
  double cpu0 = CpuSeconds();
  long t0 = input_ticks();
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  double cpu1 = CpuSeconds();
  long t1 = input_ticks();
  (*server)->RequestShutdown();
  (*server)->Wait();
  std::filesystem::remove_all(dir);
  return {{"idle_seconds", seconds},
          {"process_cpu_s", cpu1 - cpu0},
          {"input_thread_ticks", t1 - t0},
          {"ticks_per_s", sysconf(_SC_CLK_TCK)}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"loop-ptp-bench: PTP monitor throughput, memory and idle CPU"};
  std::string file;
  int runs = 3, rate = 16, idle = 0;
  bool day = false;
  app.add_option("--file", file, "a log file to push through the monitor");
  app.add_option("--runs", runs, "runs over --file (the best counts)");
  app.add_flag("--day", day, "replay a day's worth of generated lines");
  app.add_option("--rate", rate, "offset lines per log second for --day");
  app.add_option("--idle", idle, "seconds to watch an idle live loop");
  CLI11_PARSE(app, argc, argv);
  loophost::SetMinLogLevel(loophost::LogLevel::kWarn);
  // As loophost and every plugin do (common/process_tuning.h): Debian's
  // Abseil runs its deadlock detector on each lock otherwise.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  nlohmann::json out = nlohmann::json::object();
  if (!file.empty()) out["throughput"] = Throughput(file, runs);
  if (day) out["day"] = Day(rate);
  if (idle > 0) out["idle"] = Idle(idle);
  std::string cpu;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  out["cpu"] = cpu;
  std::cout << out.dump(2) << "\n";
  return 0;
}
