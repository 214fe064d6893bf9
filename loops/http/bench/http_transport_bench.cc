// http-transport-bench: the HTTP transport's speed through its gRPC service,
// as the host drives it, to N loopback subscribers (cpp-httplib servers, one
// port each). Modes: "inproc" (LoopServer in this process, in-process
// channel) and "child" (the real loop-http over its unix socket). Phases:
//   throughput: every subscriber has `window` deliveries outstanding (the
//     host keeps one per subscriber, in order); deliveries/s over --seconds.
//   latency: --rate deliveries/s, round robin over the subscribers, paced
//     open-loop; send -> the subscriber's handler has the POST (and -> the
//     result back on the stream), p50/p99.
//   idle: loop-http's CPU over --idle-seconds with nothing to do and every
//     keep-alive connection open (child mode only).
// Prints one JSON object per line.
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <sys/stat.h>
#include <time.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/proc_info.h"
#include "bench/stats.h"
#include "loophost/v1/transport.grpc.pb.h"
#include "loops/http/http_transport_loop.h"
#include "loops/http/loopback_http_server.h"
#include "loops/sdk/loop_server.h"
#include "tests/testing/child_process.h"

namespace loophost::loops::http {
namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int subscribers = 100;
  int window = 1;
  double seconds = 5;
  double rate = 1000;
  double latency_seconds = 10;
  double idle_seconds = 5;
  std::string modes = "inproc,child";
  std::string loop_http = LOOP_HTTP_PATH;
  int max_in_flight = 256;
};

int64_t Nanos(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             t.time_since_epoch())
      .count();
}

// A CloudEvent-sized body whose first field carries the delivery id, so that
// a subscriber can stamp the arrival of exactly that delivery.
std::string Body(uint64_t id) {
  return absl::StrCat(
      R"({"id":")", id,
      R"(","specversion":"1.0","source":"/cluster/node/bench/sync/ptp-status/lock-state",)"
      R"("type":"event.sync.ptp-status.ptp-state-change","time":"2026-11-22T04:50:00.123456789Z",)"
      R"("data":{"version":"1.0","values":[{"ResourceAddress":"/cluster/node/bench/sync/ptp-status/lock-state/ens1f0",)"
      R"("data_type":"notification","value_type":"enumeration","value":"LOCKED"},)"
      R"({"ResourceAddress":"/cluster/node/bench/sync/ptp-status/lock-state/ens1f0",)"
      R"("data_type":"metric","value_type":"decimal64.3","value":"-12.000"}]}})");
}

uint64_t IdOf(const std::string& body) {
  // {"id":"<n>",...
  return std::strtoull(body.c_str() + 7, nullptr, 10);
}

// The subscribers, and per-delivery arrival times (ns; 0 = not yet).
class Subscribers {
 public:
  explicit Subscribers(int n) {
    for (int i = 0; i < n; ++i) {
      auto s = std::make_unique<LoopbackHttpServer>(204, /*record=*/false);
      s->set_on_request([this](const httplib::Request& req) {
        const uint64_t id = IdOf(req.body);
        if (id < arrived_.size()) {
          arrived_[id].store(Nanos(Clock::now()), std::memory_order_relaxed);
        }
      });
      urls_.push_back(s->Url("/event"));
      servers_.push_back(std::move(s));
    }
  }
  // Arrival stamps for ids [0, n).
  void Track(size_t n) { arrived_ = std::vector<std::atomic<int64_t>>(n); }
  int64_t ArrivedAt(uint64_t id) const {
    return id < arrived_.size() ? arrived_[id].load() : 0;
  }
  const std::string& url(int i) const { return urls_[i]; }
  int size() const { return static_cast<int>(urls_.size()); }
  int requests() const {
    int n = 0;
    for (const auto& s : servers_) n += s->requests();
    return n;
  }
  int connections() const {
    int n = 0;
    for (const auto& s : servers_) n += s->connections();
    return n;
  }

 private:
  std::vector<std::unique_ptr<LoopbackHttpServer>> servers_;
  std::vector<std::string> urls_;
  std::vector<std::atomic<int64_t>> arrived_;
};

// The transport under test: a channel to it and, for CPU, its pid.
struct Transport {
  std::shared_ptr<grpc::Channel> channel;
  int pid = 0;  // 0 = this process
  std::unique_ptr<sdk::LoopServer> server;
  std::unique_ptr<testing::ChildProcess> child;
  std::unique_ptr<testing::TempDir> dir;

  ~Transport() {
    channel.reset();
    server.reset();
    if (child) {
      child->Signal(SIGTERM).IgnoreError();
      child->Wait(absl::Seconds(10)).IgnoreError();
    }
  }
};

sdk::LoopEnv TransportEnv(const Options& o) {
  return {{"TRANSPORT_HOST", "http://localhost:9085"},
          {"HTTP_TRANSPORT_MAX_IN_FLIGHT", absl::StrCat(o.max_in_flight)}};
}

absl::StatusOr<std::unique_ptr<Transport>> StartInProcess(const Options& o) {
  auto t = std::make_unique<Transport>();
  auto server =
      sdk::LoopServer::StartInProcess(MakeHttpTransportLoop(), TransportEnv(o));
  if (!server.ok()) return server.status();
  t->server = *std::move(server);
  t->channel = t->server->InProcessChannel();
  return t;
}

absl::StatusOr<std::unique_ptr<Transport>> StartChild(const Options& o) {
  auto t = std::make_unique<Transport>();
  auto dir = testing::TempDir::Create("lh-http-bench-");
  if (!dir.ok()) return dir.status();
  t->dir = std::make_unique<testing::TempDir>(*std::move(dir));
  const std::string sockets = t->dir->Join("sock");
  ::mkdir(sockets.c_str(), 0700);
  testing::ChildOptions options;
  options.argv = {o.loop_http};
  options.env = {"LOOPHOST_PLUGIN_COOKIE=d2a4c6e8-loophost-v1",
                 "PLUGIN_PROTOCOL_VERSIONS=1",
                 "PLUGIN_UNIX_SOCKET_DIR=" + sockets,
                 "LOOP_NAME=http",
                 "LOOP_LOG_LEVEL=warn",
                 "PATH=/usr/bin:/bin"};
  for (const auto& [k, v] : TransportEnv(o)) {
    options.env.push_back(absl::StrCat(k, "=", v));
  }
  options.stdout_path = t->dir->Join("stdout");
  options.stderr_path = t->dir->Join("stderr");
  auto child = testing::ChildProcess::Spawn(options);
  if (!child.ok()) return child.status();
  t->child = *std::move(child);
  t->pid = t->child->pid();
  std::string line;
  bool ok = testing::WaitFor(
      [&] {
        std::string out = testing::ReadFileOrEmpty(t->dir->Join("stdout"));
        size_t nl = out.find('\n');
        if (nl == std::string::npos) return false;
        line = out.substr(0, nl);
        return true;
      },
      absl::Seconds(10), "handshake");
  std::vector<std::string> fields = absl::StrSplit(line, '|');
  if (!ok || fields.size() < 5) {
    return absl::UnavailableError(
        absl::StrCat("loop-http handshake: \"", line, "\" ",
                     testing::ReadFileOrEmpty(t->dir->Join("stderr"))));
  }
  t->channel = grpc::CreateChannel("unix:" + fields[3],
                                   grpc::InsecureChannelCredentials());
  return t;
}

v1::Delivery MakeDelivery(uint64_t id, const std::string& url) {
  v1::Delivery d;
  d.set_delivery_id(id);
  d.set_subscription_id("bench");
  d.set_endpoint(url);
  d.set_body(Body(id));
  d.set_content_type("application/json");
  return d;
}

double CpuMs(int pid) {
  return static_cast<double>(bench::ProcCpuNs(pid)) / 1e6;
}

// Closed loop: `window` outstanding per subscriber; each result triggers the
// subscriber's next delivery. Ids are n * S + s, so a result names its
// subscriber.
nlohmann::json Throughput(const Options& o, Transport& t, Subscribers& subs,
                          const std::string& mode) {
  auto stub = v1::Transport::NewStub(t.channel);
  grpc::ClientContext context;
  auto stream = stub->Deliver(&context);
  const int S = subs.size();
  std::vector<uint64_t> next(S, 0);
  // The next delivery of subscriber s, added to `batch` (sent as the host
  // does: what is due at once goes in one message).
  v1::DeliveryBatch batch;
  auto add = [&](int s) {
    const uint64_t id = next[s]++ * S + s;
    *batch.add_deliveries() = MakeDelivery(id, subs.url(s));
  };
  auto send = [&] {
    const bool ok = stream->Write(batch);
    batch.Clear();
    return ok;
  };
  // Warm up: connections opened, caches filled.
  for (int s = 0; s < S; ++s) add(s);
  send();
  v1::DeliveryResultBatch results;
  for (int got = 0; got < S && stream->Read(&results);) {
    got += results.results_size();
  }

  const double cpu0 = CpuMs(t.pid);
  const double cpu_self0 = CpuMs(0);
  const Clock::time_point start = Clock::now();
  const Clock::time_point end =
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(o.seconds));
  for (int w = 0; w < o.window; ++w) {
    for (int s = 0; s < S; ++s) add(s);
  }
  send();
  int64_t done = 0;
  int64_t failed = 0;
  int64_t outstanding = static_cast<int64_t>(S) * o.window;
  bool stopping = false;
  while (outstanding > 0 && stream->Read(&results)) {
    for (const v1::DeliveryResult& r : results.results()) {
      --outstanding;
      ++done;
      if (!r.delivered()) ++failed;
      if (!stopping) {
        add(static_cast<int>(r.delivery_id() % S));
        ++outstanding;
      }
    }
    if (!stopping && Clock::now() >= end) stopping = true;
    if (batch.deliveries_size() > 0) send();
  }
  const double secs =
      std::chrono::duration<double>(Clock::now() - start).count();
  const double cpu = CpuMs(t.pid) - cpu0;
  const double cpu_self = CpuMs(0) - cpu_self0;
  stream->WritesDone();
  grpc::Status st = stream->Finish();
  nlohmann::json j = {
      {"bench", "throughput"},
      {"mode", mode},
      {"subscribers", S},
      {"window", o.window},
      {"deliveries", done},
      {"failed", failed},
      {"seconds", secs},
      {"deliveries_per_s", static_cast<double>(done) / secs},
      {"subscriber_connections", subs.connections()},
      {"stream_status", st.ok() ? "OK" : st.error_message()},
  };
  if (t.pid != 0) {
    j["transport_cpu_ms"] = cpu;
    j["transport_cpu_us_per_delivery"] =
        cpu * 1000 / static_cast<double>(std::max<int64_t>(1, done));
  }
  j["bench_process_cpu_ms"] = cpu_self;
  return j;
}

// Open loop at `rate`: delivery i goes to subscriber i % S at start + i/rate.
nlohmann::json Latency(const Options& o, Transport& t, Subscribers& subs,
                       const std::string& mode) {
  const int S = subs.size();
  const size_t n = static_cast<size_t>(o.rate * o.latency_seconds);
  subs.Track(n + 1);
  std::vector<int64_t> sent(n, 0);
  std::vector<int64_t> answered(n, 0);
  std::vector<char> delivered(n, 0);
  auto stub = v1::Transport::NewStub(t.channel);
  grpc::ClientContext context;
  auto stream = stub->Deliver(&context);
  std::thread reader([&] {
    v1::DeliveryResultBatch results;
    while (stream->Read(&results)) {
      const int64_t now = Nanos(Clock::now());
      for (const v1::DeliveryResult& r : results.results()) {
        if (r.delivery_id() < n) {
          answered[r.delivery_id()] = now;
          delivered[r.delivery_id()] = r.delivered() ? 1 : 0;
        }
      }
    }
  });
  const double cpu0 = CpuMs(t.pid);
  const int64_t start = Nanos(Clock::now()) + 1000000;
  for (size_t i = 0; i < n; ++i) {
    const int64_t at =
        start + static_cast<int64_t>(static_cast<double>(i) * 1e9 / o.rate);
    timespec ts{static_cast<time_t>(at / 1000000000), at % 1000000000};
    // Pacing, not synchronisation: the schedule is the experiment.
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
    sent[i] = Nanos(Clock::now());
    v1::DeliveryBatch one;
    *one.add_deliveries() = MakeDelivery(i, subs.url(static_cast<int>(i % S)));
    stream->Write(one);
  }
  stream->WritesDone();
  reader.join();
  grpc::Status st = stream->Finish();
  const double cpu = CpuMs(t.pid) - cpu0;
  std::vector<double> arrive_us, result_us;
  int64_t missing = 0, failed = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t a = subs.ArrivedAt(i);
    if (a == 0 || answered[i] == 0) {
      ++missing;
      continue;
    }
    if (!delivered[i]) ++failed;
    arrive_us.push_back(static_cast<double>(a - sent[i]) / 1000.0);
    result_us.push_back(static_cast<double>(answered[i] - sent[i]) / 1000.0);
  }
  nlohmann::json j = {
      {"bench", "latency"},
      {"mode", mode},
      {"subscribers", S},
      {"rate_per_s", o.rate},
      {"deliveries", n},
      {"missing", missing},
      {"failed", failed},
      {"send_to_subscriber_us", bench::Summarize(arrive_us)},
      {"send_to_result_us", bench::Summarize(result_us)},
      {"stream_status", st.ok() ? "OK" : st.error_message()},
  };
  if (t.pid != 0) j["transport_cpu_ms"] = cpu;
  return j;
}

nlohmann::json Idle(const Options& o, Transport& t, Subscribers& subs,
                    const std::string& mode) {
  const double cpu0 = CpuMs(t.pid);
  std::this_thread::sleep_for(std::chrono::duration<double>(o.idle_seconds));
  const double cpu = CpuMs(t.pid) - cpu0;
  return {{"bench", "idle"},
          {"mode", mode},
          {"seconds", o.idle_seconds},
          {"kept_alive_connections", subs.connections()},
          {"transport_cpu_ms", cpu},
          {"transport_cpu_percent", cpu / (o.idle_seconds * 10)}};
}

int Main(int argc, char** argv) {
  Options o;
  CLI::App app{"HTTP transport benchmark (JSON lines on stdout)"};
  app.add_option("--subscribers", o.subscribers, "loopback subscribers");
  app.add_option("--window", o.window,
                 "throughput: deliveries outstanding per subscriber");
  app.add_option("--seconds", o.seconds, "throughput phase length");
  app.add_option("--rate", o.rate, "latency phase: deliveries per second");
  app.add_option("--latency-seconds", o.latency_seconds,
                 "latency phase length");
  app.add_option("--idle-seconds", o.idle_seconds, "idle phase length");
  app.add_option("--modes", o.modes, "inproc,child");
  app.add_option("--loop-http", o.loop_http, "path of loop-http");
  app.add_option("--max-in-flight", o.max_in_flight,
                 "HTTP_TRANSPORT_MAX_IN_FLIGHT");
  CLI11_PARSE(app, argc, argv);

  std::printf("%s\n",
              nlohmann::json({{"bench", "machine"},
                              {"cpu", bench::CpuModel()},
                              {"cpus", std::thread::hardware_concurrency()},
                              {"kernel", bench::KernelRelease()},
                              {"load", bench::LoadAvg()},
                              {"build", LH_BENCH_BUILD_TYPE}})
                  .dump()
                  .c_str());
  for (absl::string_view mode : absl::StrSplit(o.modes, ',')) {
    // Subscribers outlive the transport: it closes its connections first
    // (see LoopbackHttpServer).
    const std::string m(mode);
    Subscribers subs(o.subscribers);
    absl::StatusOr<std::unique_ptr<Transport>> t =
        mode == "child" ? StartChild(o) : StartInProcess(o);
    if (!t.ok()) {
      std::fprintf(stderr, "%s: %s\n", m.c_str(),
                   t.status().ToString().c_str());
      return 1;
    }
    std::printf("%s\n", Throughput(o, **t, subs, m).dump().c_str());
    std::fflush(stdout);
    std::printf("%s\n", Latency(o, **t, subs, m).dump().c_str());
    std::fflush(stdout);
    // In-process, this process's CPU would be the subscribers' as much as
    // the transport's: idle CPU is measured on loop-http only.
    if (o.idle_seconds > 0 && (*t)->pid != 0) {
      std::printf("%s\n", Idle(o, **t, subs, m).dump().c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace loophost::loops::http

int main(int argc, char** argv) {
  try {
    return loophost::loops::http::Main(argc, argv);
  } catch (const std::exception& e) {  // CLI11, nlohmann::json
    std::fprintf(stderr, "http-transport-bench: %s\n", e.what());
    return 1;
  }
}
