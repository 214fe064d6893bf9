// Implementation of proc_info.h: line-oriented reads of /proc text files.
#include "bench/proc_info.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace loophost::bench {
namespace {

std::string ProcPath(int pid, absl::string_view file) {
  return pid > 0 ? absl::StrCat("/proc/", pid, "/", file)
                 : absl::StrCat("/proc/self/", file);
}

std::string Trimmed(absl::string_view text) {
  absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  return std::string(trimmed.data(), trimmed.size());
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Copies "Key:   123 kB" lines whose key is in `keys` into `out` as numbers.
void CopyKeys(const std::string& text, std::initializer_list<const char*> keys,
              nlohmann::json& out) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    for (const char* key : keys) {
      absl::string_view k(key);
      if (!absl::StartsWith(line, k) || line.size() <= k.size() ||
          line[k.size()] != ':') {
        continue;
      }
      std::vector<absl::string_view> fields = absl::StrSplit(
          line.substr(k.size() + 1), ' ', absl::SkipWhitespace());
      int64_t value = 0;
      if (!fields.empty() && absl::SimpleAtoi(fields[0], &value)) {
        out[key] = value;
      }
    }
  }
}

}  // namespace

nlohmann::json ProcMemory(int pid) {
  nlohmann::json out = nlohmann::json::object();
  CopyKeys(ReadFile(ProcPath(pid, "status")),
           {"VmRSS", "VmHWM", "RssAnon", "RssFile", "VmSize", "Threads"}, out);
  CopyKeys(ReadFile(ProcPath(pid, "smaps_rollup")),
           {"Pss", "Pss_Anon", "Pss_File"}, out);
  return out;
}

int64_t ProcCpuNs(int pid) {
  int64_t total = 0;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator(ProcPath(pid, "task"), ec)) {
    const std::string text = ReadFile(task.path().string() + "/schedstat");
    total += static_cast<int64_t>(std::strtoll(text.c_str(), nullptr, 10));
  }
  return total;
}

int MappedSharedObjects(int pid) {
  std::set<std::string> objects;
  for (absl::string_view line :
       absl::StrSplit(ReadFile(ProcPath(pid, "maps")), '\n')) {
    size_t slash = line.find('/');
    if (slash == absl::string_view::npos) continue;
    absl::string_view path = line.substr(slash);
    if (absl::StrContains(path, ".so")) objects.emplace(path);
  }
  return static_cast<int>(objects.size());
}

std::string LoadAvg() { return Trimmed(ReadFile("/proc/loadavg")); }

double LoadAvg1() { return std::strtod(LoadAvg().c_str(), nullptr); }

std::string CpuModel() {
  for (absl::string_view line :
       absl::StrSplit(ReadFile("/proc/cpuinfo"), '\n')) {
    if (!absl::StartsWith(line, "model name")) continue;
    size_t colon = line.find(':');
    if (colon != absl::string_view::npos) {
      return Trimmed(line.substr(colon + 1));
    }
  }
  return "unknown";
}

std::string KernelRelease() {
  return Trimmed(ReadFile("/proc/sys/kernel/osrelease"));
}

int64_t MemTotalKb() {
  nlohmann::json out = nlohmann::json::object();
  CopyKeys(ReadFile("/proc/meminfo"), {"MemTotal"}, out);
  return out.value("MemTotal", int64_t{0});
}

}  // namespace loophost::bench
