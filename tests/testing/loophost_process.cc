// Implementation of LoophostProcess (loophost_process.h).
#include "tests/testing/loophost_process.h"

#include <httplib.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace loophost::testing {
namespace {

constexpr absl::Duration kPluginExitGrace = absl::Seconds(5);
constexpr absl::Duration kTeardownStopTimeout = absl::Seconds(30);
constexpr size_t kLogTailLines = 60;

std::string TailForError(const std::string& log) {
  return absl::StrCat("\n--- loophost log (last ", kLogTailLines,
                      " lines) ---\n", LastLines(log, kLogTailLines),
                      "--- end of log ---");
}

// "<key>=127.0.0.1:45678" (key "metrics" or "api") in the "loophost started"
// line -> host, port.
bool ParseStartedLine(const std::string& log, absl::string_view key,
                      std::string* host, int* port) {
  const std::string needle = absl::StrCat(" ", key, "=");
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    if (!absl::StrContains(line, "loophost started")) continue;
    size_t at = line.find(needle);
    if (at == absl::string_view::npos) continue;
    absl::string_view value = line.substr(at + needle.size());
    value = value.substr(0, value.find(' '));
    size_t colon = value.rfind(':');
    if (colon == absl::string_view::npos) continue;
    int p = 0;
    if (!absl::SimpleAtoi(value.substr(colon + 1), &p) || p <= 0) continue;
    absl::string_view h = value.substr(0, colon);
    if (absl::ConsumePrefix(&h, "[")) absl::ConsumeSuffix(&h, "]");
    *host = std::string(h);
    *port = p;
    return true;
  }
  return false;
}

// Parses `{a="x",b="y"}` starting at text[*pos] == '{'; advances *pos past '}'.
bool ParseLabels(absl::string_view text, size_t* pos,
                 std::map<std::string, std::string>* labels) {
  size_t i = *pos + 1;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == ',')) ++i;
    if (i < text.size() && text[i] == '}') {
      *pos = i + 1;
      return true;
    }
    size_t eq = text.find('=', i);
    if (eq == absl::string_view::npos || eq + 1 >= text.size() ||
        text[eq + 1] != '"') {
      return false;
    }
    std::string key(absl::StripAsciiWhitespace(text.substr(i, eq - i)));
    std::string value;
    i = eq + 2;
    for (; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] == '\\' && i + 1 < text.size()) {
        ++i;
        value += text[i] == 'n' ? '\n' : text[i];
      } else {
        value += text[i];
      }
    }
    if (i >= text.size()) return false;
    ++i;  // closing quote
    (*labels)[key] = std::move(value);
  }
  return false;
}

// The parent pid of `pid` from /proc/<pid>/stat, or 0.
pid_t ParentPid(pid_t pid) {
  const std::string stat =
      ReadFileOrEmpty(absl::StrCat("/proc/", pid, "/stat"));
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<absl::string_view> fields = absl::StrSplit(
      absl::string_view(stat).substr(close + 1), ' ', absl::SkipEmpty());
  int ppid = 0;
  if (fields.size() < 2 || !absl::SimpleAtoi(fields[1], &ppid)) return 0;
  return ppid;
}

}  // namespace

std::optional<double> FindSample(
    const std::string& exposition, const std::string& name,
    const std::map<std::string, std::string>& labels) {
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    size_t end = line.find_first_of("{ ");
    if (end == absl::string_view::npos || line.substr(0, end) != name) continue;
    std::map<std::string, std::string> have;
    size_t pos = end;
    if (line[pos] == '{' && !ParseLabels(line, &pos, &have)) continue;
    bool match = true;
    for (const auto& [key, value] : labels) {
      auto it = have.find(key);
      if (it == have.end() || it->second != value) {
        match = false;
        break;
      }
    }
    if (!match) continue;
    absl::string_view rest = absl::StripAsciiWhitespace(line.substr(pos));
    rest = rest.substr(0, rest.find(' '));  // drop an optional timestamp
    double v = 0;
    if (rest == "+Inf") return HUGE_VAL;
    if (rest == "-Inf") return -HUGE_VAL;
    if (absl::SimpleAtod(rest, &v)) return v;
  }
  return std::nullopt;
}

LoophostProcess::LoophostProcess(TempDir work_dir, std::string log_path,
                                 std::unique_ptr<ChildProcess> process)
    : work_dir_(std::move(work_dir)),
      log_path_(std::move(log_path)),
      process_(std::move(process)) {}

absl::StatusOr<std::unique_ptr<LoophostProcess>> LoophostProcess::Start(
    LoophostOptions options) {
  absl::StatusOr<TempDir> dir = TempDir::Create("lh-test-");
  if (!dir.ok()) return dir.status();
  std::error_code ec;
  std::filesystem::create_directories(dir->Join("tmp"), ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("mkdir ", dir->Join("tmp"), ": ", ec.message()));
  }

  std::map<std::string, std::string> env = {
      {"TMPDIR", dir->Join("tmp")},
      {"LOOPHOST_STATE_DIR", dir->Join("state")},
      {"LOOPHOST_METRICS_ADDR", "127.0.0.1:0"},
      {"LOOPHOST_API_ADDR", "127.0.0.1:0"},
      {"NODE_NAME", "lh-test-node"},
  };
  if (const char* path = ::getenv("PATH")) env["PATH"] = path;
  auto expand = [&](const std::string& value) {
    return absl::StrReplaceAll(value, {{"${WORK_DIR}", dir->path()}});
  };
  for (auto& [key, value] : options.env) env[key] = expand(value);
  for (const auto& [name, content] : options.files) {
    std::ofstream out(dir->Join(name), std::ios::binary | std::ios::trunc);
    out << expand(content);
    out.close();
    if (!out) {
      return absl::InternalError(
          absl::StrCat("cannot write ", dir->Join(name)));
    }
    // A script ("#!...") is made executable, e.g. a wrapper used as a plugin.
    if (absl::StartsWith(content, "#!")) ::chmod(dir->Join(name).c_str(), 0755);
  }

  ChildOptions child;
  child.argv.push_back(options.binary);
  for (auto& a : options.args) child.argv.push_back(expand(a));
  for (const auto& [key, value] : env) {
    child.env.push_back(absl::StrCat(key, "=", value));
  }
  child.stdout_path = dir->Join("loophost.stdout");
  child.stderr_path = dir->Join("loophost.log");

  const absl::Time spawned_at = absl::Now();
  absl::StatusOr<std::unique_ptr<ChildProcess>> process =
      ChildProcess::Spawn(child);
  if (!process.ok()) return process.status();
  std::unique_ptr<LoophostProcess> host(new LoophostProcess(
      std::move(*dir), child.stderr_path, std::move(*process)));
  host->spawned_at_ = spawned_at;
  if (absl::Status s = host->AwaitStartedLine(options.start_timeout); !s.ok()) {
    // The destructor kills and reaps it; keep the dir for a look.
    host->work_dir_.Keep();
    return absl::Status(s.code(), absl::StrCat(s.message(), " (work dir kept: ",
                                               host->work_dir(), ")",
                                               TailForError(host->Log())));
  }
  return host;
}

absl::Status LoophostProcess::AwaitStartedLine(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (ParseStartedLine(Log(), "metrics", &metrics_host_, &metrics_port_)) {
      // Older hosts (and hosts without the event framework) have no api=.
      ParseStartedLine(Log(), "api", &api_host_, &api_port_);
      return absl::OkStatus();
    }
    if (!process_->running()) {
      return absl::FailedPreconditionError(
          absl::StrCat("loophost ", process_->exit_status()->ToString(),
                       " before logging \"loophost started\""));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("no \"loophost started ... metrics=HOST:PORT\" line "
                       "within ",
                       absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
}

LoophostProcess::~LoophostProcess() {
  const bool failed = ::testing::Test::HasFailure();
  if (process_->running() && !failed) {
    // The usual end of a passing test that did not call Stop() itself.
    if (absl::StatusOr<ExitStatus> st = Stop(kTeardownStopTimeout); !st.ok()) {
      std::fprintf(stderr, "[loophost_process] teardown: %s\n",
                   std::string(st.status().message()).c_str());
    }
  }
  if (process_->running()) {
    ExitStatus st = process_->KillAndReap();
    std::fprintf(stderr,
                 "[loophost_process] teardown after a failure: SIGKILLed "
                 "loophost's process group (pid %d, %s)\n",
                 static_cast<int>(process_->pid()), st.ToString().c_str());
  }
  for (auto& [pid, plugin] : seen_plugins_) {
    if (plugin.WaitExited(kPluginExitGrace)) continue;
    std::fprintf(stderr,
                 "[loophost_process] plugin pid %d outlived loophost "
                 "by %s: SIGKILL\n",
                 static_cast<int>(pid),
                 absl::FormatDuration(kPluginExitGrace).c_str());
    (void)plugin.Signal(SIGKILL);
  }
  const char* keep = ::getenv("LH_TEST_KEEP_TMP");
  if (failed || (keep != nullptr && std::string(keep) == "1")) {
    work_dir_.Keep();
  }
  if (failed) {
    std::fprintf(stderr, "[loophost_process] work dir kept: %s%s\n",
                 work_dir().c_str(), TailForError(Log()).c_str());
  }
}

std::string LoophostProcess::Log() const { return ReadFileOrEmpty(log_path_); }

std::vector<std::string> LoophostProcess::LogLines(
    const std::vector<std::string>& needles) const {
  std::vector<std::string> out;
  const std::string log = Log();
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    bool all = true;
    for (const std::string& n : needles)
      all = all && absl::StrContains(line, n);
    if (all && !line.empty()) out.emplace_back(line);
  }
  return out;
}

absl::StatusOr<HttpResponse> LoophostProcess::Get(
    const std::string& path,
    const std::map<std::string, std::string>& headers) const {
  httplib::Client client(metrics_host_, metrics_port_);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(10, 0);
  httplib::Headers h;
  for (const auto& [key, value] : headers) h.emplace(key, value);
  httplib::Result result = client.Get(path, h);
  if (!result) {
    return absl::UnavailableError(
        absl::StrCat("GET http://", metrics_host_, ":", metrics_port_, path,
                     ": ", httplib::to_string(result.error())));
  }
  return HttpResponse{result->status, result->body,
                      result->get_header_value("Content-Type")};
}

void LoophostProcess::RememberPid(pid_t pid) {
  if (pid <= 0 || seen_plugins_.count(pid) != 0) return;
  absl::StatusOr<ForeignProcess> p = ForeignProcess::Open(pid);
  if (!p.ok()) return;  // gone already: nothing to watch
  // Only loophost's own children: /plugins may name a pid that has exited
  // (and been reused) since. If the pidfd's process is still alive after the
  // parent was read, the pid was not reused, so the parent read was its own.
  if (ParentPid(pid) != process_->pid() || p->exited()) return;
  seen_plugins_.emplace(pid, std::move(*p));
}

absl::StatusOr<nlohmann::json> LoophostProcess::Plugins() {
  absl::StatusOr<HttpResponse> r = Get("/plugins");
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return absl::UnavailableError(
        absl::StrCat("GET /plugins: HTTP ", r->status, ": ", r->body));
  }
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr,
                                           /*allow_exceptions=*/false);
  if (!j.is_array()) {
    return absl::DataLossError(
        absl::StrCat("GET /plugins: not a JSON array: ", r->body));
  }
  for (const nlohmann::json& p : j) {
    if (p.is_object() && p.contains("pid") && p["pid"].is_number_integer()) {
      RememberPid(p["pid"].get<pid_t>());
    }
  }
  return j;
}

std::optional<nlohmann::json> LoophostProcess::Plugin(const std::string& name) {
  absl::StatusOr<nlohmann::json> all = Plugins();
  if (!all.ok()) return std::nullopt;
  for (const nlohmann::json& p : *all) {
    if (p.is_object() && p.value("name", "") == name) return p;
  }
  return std::nullopt;
}

std::string LoophostProcess::PluginState(const std::string& name) {
  std::optional<nlohmann::json> p = Plugin(name);
  return p ? p->value("state", "") : "";
}

pid_t LoophostProcess::PluginPid(const std::string& name) {
  std::optional<nlohmann::json> p = Plugin(name);
  return p ? p->value("pid", 0) : 0;
}

std::optional<double> LoophostProcess::Metric(
    const std::string& name, const std::map<std::string, std::string>& labels) {
  absl::StatusOr<HttpResponse> r = Get("/metrics");
  if (!r.ok() || r->status != 200) return std::nullopt;
  return FindSample(r->body, name, labels);
}

::testing::AssertionResult LoophostProcess::WaitFor(
    const std::function<bool()>& condition, absl::Duration timeout,
    const std::string& what) {
  bool died = false;
  ::testing::AssertionResult result = loophost::testing::WaitFor(
      [&] {
        if (condition()) return true;
        died = !process_->running();
        return died;
      },
      timeout, what);
  if (died) {
    return ::testing::AssertionFailure()
           << "loophost " << process_->exit_status()->ToString()
           << " while waiting for: " << what << TailForError(Log());
  }
  return result;
}

absl::StatusOr<ExitStatus> LoophostProcess::Stop(absl::Duration timeout) {
  if (absl::Status s = process_->Signal(SIGTERM); !s.ok()) return s;
  absl::StatusOr<ExitStatus> st = process_->Wait(timeout);
  if (st.ok()) return st;
  ExitStatus killed = process_->KillAndReap();
  return absl::DeadlineExceededError(absl::StrCat(
      "loophost did not exit within ", absl::FormatDuration(timeout),
      " of SIGTERM; SIGKILLed (", killed.ToString(), ")"));
}

std::vector<pid_t> LoophostProcess::SeenPluginPids() const {
  std::vector<pid_t> out;
  for (const auto& [pid, unused] : seen_plugins_) out.push_back(pid);
  return out;
}

::testing::AssertionResult LoophostProcess::SeenPluginsExited(
    absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string alive;
  for (auto& [pid, plugin] : seen_plugins_) {
    if (!plugin.WaitExited(
            std::max(absl::ZeroDuration(), deadline - absl::Now()))) {
      absl::StrAppend(&alive, alive.empty() ? "" : ", ", pid);
    }
  }
  if (alive.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "plugin pid(s) still running after "
         << absl::FormatDuration(timeout) << ": " << alive;
}

}  // namespace loophost::testing
