// Implementation of loopctl's parsing and tables (status_table.h), with
// nlohmann-json.
#include "cmd/loopctl/status_table.h"

#include <algorithm>
#include <cstddef>
#include <exception>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace loophost::loopctl {
namespace {

using nlohmann::json;

// A failing check's error is shown on one line and at most this long.
constexpr size_t kMaxErrorWidth = 60;

// Columns two spaces apart, left-aligned; the last column is not padded.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (size_t i = 0; i < row.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out.append(widths[i] - row[i].size() + 2, ' ');
    }
    out += '\n';
  }
  return out;
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

}  // namespace

absl::StatusOr<std::vector<PluginRow>> ParsePluginList(absl::string_view text) {
  json list = json::parse(text.begin(), text.end(), nullptr,
                          /*allow_exceptions=*/false);
  if (list.is_discarded())
    return absl::DataLossError("GET /plugins: the body is not JSON");
  if (!list.is_array())
    return absl::DataLossError("GET /plugins: expected a JSON array");
  std::vector<PluginRow> rows;
  try {
    for (const json& p : list) {
      PluginRow row;
      row.name = p.at("name").get<std::string>();
      row.version = p.value("version", "");
      row.kinds = p.value("kinds", std::vector<std::string>{});
      row.in_process = p.value("in_process", false);
      row.command = p.value("command", "");
      row.state = p.value("state", "");
      row.pid = p.value("pid", int64_t{0});
      if (p.contains("uptime_seconds") && !p["uptime_seconds"].is_null()) {
        row.uptime_seconds = p["uptime_seconds"].get<int64_t>();
      }
      row.restarts = p.value("restarts", uint64_t{0});
      row.prometheus_port = p.value("prometheus_port", uint16_t{0});
      row.last_error = p.value("last_error", "");
      row.checks = p.value("checks", std::map<std::string, std::string>{});
      rows.push_back(std::move(row));
    }
  } catch (const std::exception& e) {
    return absl::DataLossError(
        absl::StrCat("GET /plugins: unexpected JSON: ", e.what()));
  }
  return rows;
}

std::string FormatUptime(std::optional<int64_t> seconds) {
  if (!seconds.has_value() || *seconds < 0) return "-";
  const int64_t s = *seconds;
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, s % 3600 / 60);
  return absl::StrFormat("%dd%02dh", s / 86400, s % 86400 / 3600);
}

std::string HealthSummary(const PluginRow& row) {
  if (row.checks.empty()) return "-";
  int failing = 0;
  const std::pair<const std::string, std::string>* first = nullptr;
  for (const auto& check : row.checks) {
    if (check.second.empty()) continue;
    ++failing;
    if (first == nullptr) first = &check;
  }
  if (failing == 0) return "ok";
  std::string error =
      absl::StrReplaceAll(first->second, {{"\n", " "}, {"\t", " "}});
  if (error.size() > kMaxErrorWidth)
    error = error.substr(0, kMaxErrorWidth - 3) + "...";
  return absl::StrCat(failing, " failing: ", first->first, ": ", error);
}

std::string FormatStatusTable(const std::vector<PluginRow>& rows) {
  std::vector<std::vector<std::string>> table = {
      {"PLUGIN", "PID", "STATE", "UPTIME", "RESTARTS", "HEALTH"}};
  for (const PluginRow& r : rows) {
    table.push_back({r.name, r.pid > 0 ? absl::StrCat(r.pid) : "-",
                     OrDash(r.state), FormatUptime(r.uptime_seconds),
                     absl::StrCat(r.restarts), HealthSummary(r)});
  }
  return FormatTable(table);
}

std::string FormatPluginsTable(const std::vector<PluginRow>& rows) {
  std::vector<std::vector<std::string>> table = {
      {"PLUGIN", "VERSION", "KINDS", "PORT", "MODE"}};
  for (const PluginRow& r : rows) {
    table.push_back(
        {r.name, OrDash(r.version), OrDash(absl::StrJoin(r.kinds, ",")),
         r.prometheus_port > 0 ? absl::StrCat(r.prometheus_port) : "-",
         r.in_process ? "in-process" : absl::StrCat("child ", r.command)});
  }
  return FormatTable(table);
}

}  // namespace loophost::loopctl
