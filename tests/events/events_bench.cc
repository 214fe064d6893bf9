// events-bench: the event path's speed with the real binaries. It starts
// loophost (the PTP loop in-process for the publishers, the HTTP transport
// in-process or as loop-http), N loopback subscribers (Go net/http servers on
// port 0 in one process, v2 subscriptions), then posts events to create/event
// at a rate and
// measures, per delivery, the time from the host accepting the event (the 202)
// to the subscriber having the POST. Also: the highest sustained deliveries/s
// (events posted as fast as the host takes them), the same subscribers' raw
// HTTP ceiling (wrk, when on PATH: one thread, a keep-alive connection per
// subscriber, the event's JSON as the body) to give that rate as a ratio and
// the least p99 a burst of N POSTs allows, and loophost's CPU while idle. One
// JSON object per line on stdout.
//
//   events-bench [--subscribers 100] [--rate 1000] [--seconds 10]
//                [--max-seconds 10] [--idle-seconds 10] [--http-child]
//                [--delivery-window N]   (LOOPHOST_DELIVERY_WINDOW)
//                [--env K=V]...          (more of loophost's environment)
#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tests/testing/child_process.h"
#include "tests/testing/loophost_process.h"

namespace {

using json = nlohmann::json;
using loophost::testing::LoophostOptions;
using loophost::testing::LoophostProcess;

struct Options {
  int subscribers = 100;
  int rate = 1000;  // events/s
  int seconds = 10;
  int max_seconds = 10;
  int idle_seconds = 10;
  bool http_child = false;
  int delivery_window = 0;  // 0: loophost's default
  std::vector<std::pair<std::string, std::string>> env;  // --env K=V
};

// The subscribers: LH_GOSUBSCRIBER_BINARY (tests/events/gosubscriber), N Go
// net/http servers in one process, as O-Cloud consumers are usually written.
// Each records the arrival time of every event whose first value is the
// bench's sequence number; its control port hands them over.
class Subscribers {
 public:
  static std::unique_ptr<Subscribers> Start(int n, const std::string& dir) {
    auto s = std::unique_ptr<Subscribers>(new Subscribers());
    loophost::testing::ChildOptions child;
    child.argv = {LH_GOSUBSCRIBER_BINARY, "-n", absl::StrCat(n)};
    child.env = {"GOMAXPROCS=2"};
    child.stdout_path = dir + "/gosubscriber.out";
    child.stderr_path = dir + "/gosubscriber.err";
    auto process = loophost::testing::ChildProcess::Spawn(child);
    if (!process.ok()) return nullptr;
    s->process_ = *std::move(process);
    std::string line;
    if (!loophost::testing::WaitFor(
            [&] {
              line = loophost::testing::ReadFileOrEmpty(child.stdout_path);
              return absl::EndsWith(line, "\n");
            },
            absl::Seconds(30), "gosubscriber's ports")) {
      return nullptr;
    }
    int control = 0;
    for (absl::string_view field :
         absl::StrSplit(absl::StripAsciiWhitespace(line), ' ')) {
      if (absl::ConsumePrefix(&field, "control=")) {
        (void)absl::SimpleAtoi(field, &control);
      } else if (absl::ConsumePrefix(&field, "subscribers=")) {
        for (absl::string_view port : absl::StrSplit(field, ',')) {
          s->urls_.push_back(absl::StrCat("http://127.0.0.1:", port, "/event"));
        }
      }
    }
    if (control == 0 || static_cast<int>(s->urls_.size()) != n) return nullptr;
    s->control_ = std::make_unique<httplib::Client>("127.0.0.1", control);
    s->control_->set_keep_alive(true);
    return s;
  }

  const std::string& Url(int i) const { return urls_[i]; }
  pid_t pid() const { return process_->pid(); }

  // Events recorded since the last Take().
  size_t Count() {
    size_t n = 0;
    if (auto r = control_->Get("/count")) (void)absl::SimpleAtoi(r->body, &n);
    return n;
  }

  // The arrival times of each event's deliveries, keyed by sequence number.
  std::map<int64_t, std::vector<absl::Time>> Take() {
    std::map<int64_t, std::vector<absl::Time>> at;
    auto r = control_->Get("/receipts");
    if (!r) return at;
    for (absl::string_view line : absl::StrSplit(r->body, '\n')) {
      std::pair<absl::string_view, absl::string_view> f =
          absl::StrSplit(line, ' ');
      int64_t seq = 0, ns = 0;
      if (absl::SimpleAtoi(f.first, &seq) && absl::SimpleAtoi(f.second, &ns)) {
        at[seq].push_back(absl::FromUnixNanos(ns));
      }
    }
    return at;
  }

 private:
  Subscribers() = default;
  std::unique_ptr<loophost::testing::ChildProcess> process_;
  std::unique_ptr<httplib::Client> control_;
  std::vector<std::string> urls_;
};

// wrk's path from PATH, or empty.
std::string FindWrk() {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir : absl::StrSplit(path ? path : "", ':')) {
    std::string candidate = absl::StrCat(dir, "/wrk");
    if (!dir.empty() && ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

// The highest rate of POSTs of `body` to `url` over `connections` keep-alive
// connections from one wrk thread, for `seconds`: what the machine and the
// subscribers allow a lone HTTP client. Requests/s, or an error message.
std::variant<double, std::string> HttpCeiling(const std::string& wrk,
                                              const std::string& dir,
                                              const std::string& url,
                                              const std::string& body,
                                              int connections, int seconds) {
  const std::string script = dir + "/ceiling.lua";
  {
    std::ofstream out(script);
    out << "wrk.method = \"POST\"\n"
        << "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
        << "wrk.body = " << json(body).dump() << "\n";
  }
  loophost::testing::ChildOptions child;
  child.argv = {wrk,
                "-t1",
                absl::StrCat("-c", connections),
                absl::StrCat("-d", seconds, "s"),
                "-s",
                script,
                url};
  child.stdout_path = dir + "/wrk.out";
  child.stderr_path = dir + "/wrk.err";
  auto process = loophost::testing::ChildProcess::Spawn(child);
  if (!process.ok()) return std::string(process.status().message());
  auto status = (*process)->Wait(absl::Seconds(seconds + 30));
  if (!status.ok() || !status->ExitedWith(0)) {
    return absl::StrCat("wrk failed: ",
                        loophost::testing::ReadFileOrEmpty(child.stderr_path));
  }
  const std::string out = loophost::testing::ReadFileOrEmpty(child.stdout_path);
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    double rate = 0;
    if (absl::ConsumePrefix(&line, "Requests/sec:") &&
        absl::SimpleAtod(absl::StripAsciiWhitespace(line), &rate)) {
      return rate;
    }
  }
  return absl::StrCat("no Requests/sec in wrk's output: ", out);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  return v[i];
}

// utime+stime of `pid` in seconds (/proc/<pid>/stat).
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
  if (fields.size() < 13) return 0;
  double utime = 0, stime = 0;
  (void)absl::SimpleAtod(fields[11], &utime);
  (void)absl::SimpleAtod(fields[12], &stime);
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int Run(const Options& o) {
  LoophostOptions options;
  options.binary = LH_LOOPHOST_BINARY;
  options.env = {{"PTP_PLUGIN", "true"},
                 {"PTP_LOG_FILE", "${WORK_DIR}/ptp.log"},
                 {"LOOPHOST_DEDUP_WINDOW", "0"}};
  options.files = {{"ptp.log", ""}};
  if (o.http_child) options.env["HTTP_PLUGIN_CMD"] = LH_LOOP_HTTP_BINARY;
  for (const auto& [key, value] : o.env) options.env[key] = value;
  if (o.delivery_window > 0) {
    options.env["LOOPHOST_DELIVERY_WINDOW"] = absl::StrCat(o.delivery_window);
  }
  auto host = LoophostProcess::Start(options);
  if (!host.ok()) {
    std::fprintf(stderr, "loophost: %s\n",
                 std::string(host.status().message()).c_str());
    return 1;
  }
  LoophostProcess& h = **host;
  httplib::Client api(h.api_host(), h.api_port());
  api.set_keep_alive(true);
  api.set_tcp_nodelay(true);  // as curl does: no Nagle wait for the body
  std::string publisher, resource;
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (publisher.empty() && absl::Now() < deadline) {
    if (auto r = api.Get("/api/ocloudNotifications/v1/publishers")) {
      json list = json::parse(r->body, nullptr, false);
      if (list.is_array()) {
        for (const json& p : list) {
          if (absl::EndsWith(p.value("resource", ""), "/lock-state")) {
            publisher = p.value("id", "");
            resource = p.value("resource", "");
          }
        }
      }
    }
    if (publisher.empty()) absl::SleepFor(absl::Milliseconds(100));
  }
  if (publisher.empty() ||
      !h.WaitFor([&] { return h.PluginState("http") == "serving"; },
                 absl::Seconds(60), "http serving")) {
    std::fprintf(stderr, "no publisher or transport\n");
    return 1;
  }

  std::unique_ptr<Subscribers> subscribers =
      Subscribers::Start(o.subscribers, h.work_dir());
  if (subscribers == nullptr) {
    std::fprintf(stderr, "the subscribers did not start\n");
    return 1;
  }
  for (int i = 0; i < o.subscribers; ++i) {
    json body = {{"ResourceAddress", resource},
                 {"EndpointUri", subscribers->Url(i)}};
    auto r = api.Post("/api/ocloudNotifications/v2/subscriptions", body.dump(),
                      "application/json");
    if (!r || r->status != 201) {
      std::fprintf(stderr, "subscribe failed: %s\n",
                   r ? r->body.c_str() : "no answer");
      return 1;
    }
  }
  subscribers->Take();

  int64_t seq = 0;
  // `accepted` gets the time just before the request: the host accepts the
  // event while it answers, and a delivery may arrive before the 202 does.
  auto post = [&](std::map<int64_t, absl::Time>* accepted) {
    const absl::Time sent = absl::Now();
    json event = {{"id", publisher},
                  {"data",
                   {{"values",
                     {{{"resource", resource},
                       {"dataType", "notification"},
                       {"valueType", "enumeration"},
                       {"value", absl::StrCat(++seq)}}}}}}};
    auto r = api.Post("/api/ocloudNotifications/v1/create/event", event.dump(),
                      "application/json");
    if (r && r->status == 202 && accepted) (*accepted)[seq] = sent;
    return r && r->status == 202;
  };

  // 1. Latency at a fixed rate.
  {
    std::map<int64_t, absl::Time> accepted;
    const int total = o.rate * o.seconds;
    const absl::Time start = absl::Now();
    for (int i = 0; i < total; ++i) {
      const absl::Time due = start + absl::Seconds(1) * i / o.rate;
      const absl::Duration wait = due - absl::Now();
      if (wait > absl::ZeroDuration()) absl::SleepFor(wait);  // pacing
      post(&accepted);
    }
    const size_t expected = accepted.size() * o.subscribers;
    h.WaitFor([&] { return subscribers->Count() >= expected; },
              absl::Seconds(120), "every delivery");
    auto got = subscribers->Take();
    std::vector<double> us;
    for (const auto& [s, times] : got) {
      auto it = accepted.find(s);
      if (it == accepted.end()) continue;
      for (absl::Time t : times) {
        us.push_back(absl::ToDoubleMicroseconds(t - it->second));
      }
    }
    std::printf("%s\n",
                json{{"bench", "latency"},
                     {"subscribers", o.subscribers},
                     {"delivery_window", o.delivery_window},
                     {"events_per_s", o.rate},
                     {"events", accepted.size()},
                     {"deliveries", us.size()},
                     {"expected_deliveries", expected},
                     {"p50_us", Percentile(us, 0.50)},
                     {"p99_us", Percentile(us, 0.99)},
                     {"max_us", Percentile(us, 1.0)},
                     {"transport", o.http_child ? "loop-http" : "in-process"}}
                    .dump()
                    .c_str());
    std::fflush(stdout);
  }

  double deliveries_per_s = 0;
  // 2. Highest sustained deliveries/s: post as fast as the subscribers keep
  // up (at most `window` deliveries outstanding), count what arrives.
  {
    std::atomic<bool> stop{false};
    std::atomic<size_t> arrived_so_far{0};
    const size_t window = 20 * static_cast<size_t>(o.subscribers);
    std::vector<pid_t> pids = {h.pid(), subscribers->pid()};
    if (o.http_child) pids.push_back(h.PluginPid("http"));
    std::vector<double> cpu_before;
    for (pid_t p : pids) cpu_before.push_back(CpuSeconds(p));
    const absl::Time start = absl::Now();
    std::thread poster([&] {
      size_t posted = 0;
      while (!stop.load()) {
        if (posted * o.subscribers > arrived_so_far.load() + window) {
          absl::SleepFor(absl::Microseconds(200));  // flow control
          continue;
        }
        if (post(nullptr)) ++posted;
      }
    });
    // The poster's flow control learns what arrived from here (the control
    // port), not from a request per event. Every 5 ms: the window is about
    // 100 ms of deliveries, and the polling takes CPU from the two sides
    // measured (a request to the subscribers' process each time).
    const absl::Time end = start + absl::Seconds(o.max_seconds);
    while (absl::Now() < end) {
      arrived_so_far = subscribers->Count();
      absl::SleepFor(absl::Milliseconds(5));
    }
    const size_t arrived = subscribers->Count();
    const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
    // CPU per delivery, each process (10 ms clock ticks over the run).
    std::vector<double> cpu_us;
    for (size_t i = 0; i < pids.size(); ++i) {
      cpu_us.push_back(1e6 * (CpuSeconds(pids[i]) - cpu_before[i]) /
                       std::max<size_t>(arrived, 1));
    }
    stop = true;
    poster.join();
    deliveries_per_s = arrived / elapsed;
    std::printf("%s\n", json{{"bench", "throughput"},
                             {"subscribers", o.subscribers},
                             {"delivery_window", o.delivery_window},
                             {"seconds", elapsed},
                             {"deliveries", arrived},
                             {"deliveries_per_s", deliveries_per_s},
                             {"loophost_cpu_us_per_delivery", cpu_us[0]},
                             {"subscribers_cpu_us_per_delivery", cpu_us[1]},
                             {"loop_http_cpu_us_per_delivery",
                              cpu_us.size() > 2 ? cpu_us[2] : 0.0}}
                            .dump()
                            .c_str());
    std::fflush(stdout);
    // Let the backlog drain before measuring idle.
    h.WaitFor(
        [&] {
          auto depth = h.Metric("loophost_outbox_depth", {});
          return !depth || *depth == 0;
        },
        absl::Seconds(300), "outbox drained");
  }

  // 3. The subscribers' raw HTTP ceiling on this machine, now.
  {
    json out = {{"bench", "http_ceiling"}, {"tool", "wrk"}};
    const std::string wrk = FindWrk();
    std::string body;
    if (auto r = api.Get(absl::StrCat("/api/ocloudNotifications/v2", resource,
                                      "/CurrentState"))) {
      body = r->body;
    }
    if (wrk.empty()) {
      out["skipped"] = "wrk is not on PATH (apt-get install wrk)";
    } else {
      const int connections = std::min(o.subscribers, 1000);
      auto rate = HttpCeiling(wrk, h.work_dir(), subscribers->Url(0), body,
                              connections, o.max_seconds);
      if (const double* r = std::get_if<double>(&rate)) {
        out["connections"] = connections;
        out["body_bytes"] = body.size();
        out["requests_per_s"] = *r;
        out["deliveries_to_ceiling"] = deliveries_per_s / *r;
        // An event to N subscribers is a burst of N POSTs: even this client
        // gets the 99th percentile of them out no sooner than this.
        out["fanout_p99_floor_us"] = 0.99 * o.subscribers / *r * 1e6;
      } else {
        out["error"] = std::get<std::string>(rate);
      }
    }
    std::printf("%s\n", out.dump().c_str());
    std::fflush(stdout);
  }

  // 4. Idle CPU.
  {
    std::vector<pid_t> pids = {h.pid()};
    if (o.http_child) pids.push_back(h.PluginPid("http"));
    // Settle: the last housekeeping pass and WAL checkpoint after the drain.
    absl::SleepFor(absl::Seconds(5));
    std::vector<double> before;
    for (pid_t p : pids) before.push_back(CpuSeconds(p));
    absl::SleepFor(absl::Seconds(o.idle_seconds));  // the measuring window
    json out = {{"bench", "idle_cpu"}, {"seconds", o.idle_seconds}};
    out["loophost_cpu_percent"] =
        100 * (CpuSeconds(pids[0]) - before[0]) / o.idle_seconds;
    if (pids.size() > 1 && pids[1] > 0) {
      out["loop_http_cpu_percent"] =
          100 * (CpuSeconds(pids[1]) - before[1]) / o.idle_seconds;
    }
    std::printf("%s\n", out.dump().c_str());
  }
  (void)h.Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&](int* v) {
      if (i + 1 < argc) (void)absl::SimpleAtoi(argv[++i], v);
    };
    if (a == "--subscribers") {
      next(&o.subscribers);
    } else if (a == "--rate") {
      next(&o.rate);
    } else if (a == "--seconds") {
      next(&o.seconds);
    } else if (a == "--max-seconds") {
      next(&o.max_seconds);
    } else if (a == "--idle-seconds") {
      next(&o.idle_seconds);
    } else if (a == "--http-child") {
      o.http_child = true;
    } else if (a == "--delivery-window") {
      next(&o.delivery_window);
    } else if (a == "--env" && i + 1 < argc &&
               absl::StrContains(argv[i + 1], '=')) {
      std::pair<std::string, std::string> kv =
          absl::StrSplit(argv[++i], absl::MaxSplits('=', 1));
      o.env.push_back(std::move(kv));
    } else {
      std::fprintf(stderr,
                   "usage: events-bench [--subscribers N] [--rate EV/S] "
                   "[--seconds S] [--max-seconds S] [--idle-seconds S] "
                   "[--http-child] [--delivery-window N] [--env K=V]...\n");
      return 2;
    }
  }
  return Run(o);
}
