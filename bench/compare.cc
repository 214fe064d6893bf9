// Implementation of compare.h. Which of the peer's numbers stands for which of
// ours: launch exec_to_first_call_done_ms <-> first_call_ms (both: exec ->
// first Echo returned), exec_to_client_ms <-> exec_to_handshake_ms (go-plugin's
// Client() = handshake + a non-blocking dial), rpc and rss lines of variant
// "plain" on both sides.
#include "bench/compare.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace loophost::bench {
namespace {

using Json = nlohmann::json;

absl::StatusOr<std::vector<Json>> ReadLines(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::vector<Json> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] != '{') continue;  // tee'd build output
    Json parsed = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_discarded()) lines.push_back(std::move(parsed));
  }
  return lines;
}

// The first line of `phase` (and variant "plain" when it has a variant).
const Json* FindPhase(const std::vector<Json>& lines, const char* phase) {
  for (const Json& line : lines) {
    if (line.value("phase", "") != phase) continue;
    if (line.contains("variant") && line["variant"] != "plain") continue;
    return &line;
  }
  return nullptr;
}

// The number at a path of keys inside the first line of `phase`.
std::optional<double> Number(const std::vector<Json>& lines, const char* phase,
                             std::initializer_list<const char*> keys) {
  const Json* node = FindPhase(lines, phase);
  if (node == nullptr) return std::nullopt;
  for (const char* key : keys) {
    if (!node->is_object() || !node->contains(key)) return std::nullopt;
    node = &(*node)[key];
  }
  if (!node->is_number()) return std::nullopt;
  return node->get<double>();
}

struct Row {
  const char* metric;
  std::optional<double> ours;
  std::optional<double> peer;
  double goal;  // 0 = informational
};

std::string Cell(std::optional<double> v) {
  return v ? absl::StrFormat("%.2f", *v) : "n/a";
}

}  // namespace

absl::StatusOr<std::string> CompareRuns(const std::string& ours_path,
                                        const std::string& peer_path) {
  absl::StatusOr<std::vector<Json>> ours = ReadLines(ours_path);
  if (!ours.ok()) return ours.status();
  absl::StatusOr<std::vector<Json>> peer = ReadLines(peer_path);
  if (!peer.ok()) return peer.status();

  const std::vector<Row> rows = {
      {"launch exec->first Echo, median (ms)",
       Number(*ours, "launch", {"first_call_ms", "median"}),
       Number(*peer, "launch", {"exec_to_first_call_done_ms", "median"}), 1.0},
      {"launch exec->first Echo, p90 (ms)",
       Number(*ours, "launch", {"first_call_ms", "p90"}),
       Number(*peer, "launch", {"exec_to_first_call_done_ms", "p90"}), 1.0},
      {"Echo 16 B p50 (us)", Number(*ours, "rpc", {"latency_us", "median"}),
       Number(*peer, "rpc", {"latency_us", "median"}), 0.5},
      {"Echo 16 B p99 (us)", Number(*ours, "rpc", {"latency_us", "p99"}),
       Number(*peer, "rpc", {"latency_us", "p99"}), 0.5},
      {"plugin Pss idle (kB)",
       Number(*ours, "rss", {"plugin_after_launch_kb", "Pss"}),
       Number(*peer, "rss", {"plugin_after_launch_kb", "Pss"}), 1.0},
      {"plugin Pss after calls (kB)",
       Number(*ours, "rss", {"plugin_after_calls_kb", "Pss"}),
       Number(*peer, "rss", {"plugin_after_calls_kb", "Pss"}), 0.5},
      {"launch exec->handshake, median (ms)",
       Number(*ours, "launch", {"exec_to_handshake_ms", "median"}),
       Number(*peer, "launch", {"exec_to_client_ms", "median"}), 0},
      {"Echo 16 B p90 (us)", Number(*ours, "rpc", {"latency_us", "p90"}),
       Number(*peer, "rpc", {"latency_us", "p90"}), 0},
      {"Echo 16 B p99.9 (us)", Number(*ours, "rpc", {"latency_us", "p999"}),
       Number(*peer, "rpc", {"latency_us", "p999"}), 0},
      {"Echo calls/s (sequential)", Number(*ours, "rpc", {"calls_per_s"}),
       Number(*peer, "rpc", {"calls_per_s"}), 0},
      {"plugin VmRSS idle (kB)",
       Number(*ours, "rss", {"plugin_after_launch_kb", "VmRSS"}),
       Number(*peer, "rss", {"plugin_after_launch_kb", "VmRSS"}), 0},
      {"plugin VmRSS after calls (kB)",
       Number(*ours, "rss", {"plugin_after_calls_kb", "VmRSS"}),
       Number(*peer, "rss", {"plugin_after_calls_kb", "VmRSS"}), 0},
      {"plugin threads after calls",
       Number(*ours, "rss", {"plugin_after_calls_kb", "Threads"}),
       Number(*peer, "rss", {"plugin_after_calls_kb", "Threads"}), 0},
      {"host VmRSS after calls (kB)",
       Number(*ours, "rss", {"host_after_calls_kb", "VmRSS"}),
       Number(*peer, "rss", {"host_after_calls_kb", "VmRSS"}), 0},
      {"stop after launch, median (ms)",
       Number(*ours, "launch", {"kill_ms", "median"}),
       Number(*peer, "launch", {"kill_ms", "median"}), 0},
      {"bare unix-socket round trip p50 (us)",
       Number(*ours, "baseline_uds", {"latency_us", "median"}),
       Number(*peer, "baseline_uds", {"latency_us", "median"}), 0},
  };

  std::string out =
      "| metric | loophost | go-plugin | ratio | goal | met |\n"
      "|---|---:|---:|---:|---:|:-:|\n";
  for (const Row& row : rows) {
    std::string ratio = "n/a";
    std::string goal =
        row.goal > 0 ? absl::StrFormat("<= %.1fx", row.goal) : "";
    std::string met;
    if (row.ours && row.peer && *row.peer > 0) {
      const double r = *row.ours / *row.peer;
      ratio = absl::StrFormat("%.2fx", r);
      if (row.goal > 0) met = r <= row.goal ? "yes" : "NO";
    }
    absl::StrAppend(&out, "| ", row.metric, " | ", Cell(row.ours), " | ",
                    Cell(row.peer), " | ", ratio, " | ", goal, " | ", met,
                    " |\n");
  }
  auto load = [](const std::vector<Json>& lines, const char* phase,
                 const char* key) {
    const Json* line = FindPhase(lines, phase);
    return line != nullptr ? line->value(key, "?") : std::string("?");
  };
  absl::StrAppend(&out, "\nloadavg loophost: start ",
                  load(*ours, "machine", "loadavg_start"), ", end ",
                  load(*ours, "end", "loadavg_end"),
                  "\nloadavg go-plugin: start ",
                  load(*peer, "machine", "loadavg_start"), ", end ",
                  load(*peer, "end", "loadavg_end"), "\n");
  return out;
}

}  // namespace loophost::bench
