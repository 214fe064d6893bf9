// Tests for OperatorServer over real loopback sockets (port 0 everywhere):
// plugins are prometheus-cpp Exposers or small httplib servers serving canned
// text, or never answering.
#include "host/operator_server.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/status_matchers.h"
#include "host/exposition_merge.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace loophost::host {
namespace {

using ::loophost::testing::IsOk;
using ::loophost::testing::StatusIs;
using nlohmann::json;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class FakePluginDirectory : public PluginDirectory {
 public:
  void Set(std::vector<PluginStatus> plugins) {
    absl::MutexLock lock(&mu_);
    plugins_ = std::move(plugins);
  }
  std::vector<PluginStatus> ListPlugins() const override {
    absl::MutexLock lock(&mu_);
    return plugins_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<PluginStatus> plugins_ ABSL_GUARDED_BY(mu_);
};

PluginStatus Plugin(std::string name, uint16_t port,
                    PluginState state = PluginState::kServing) {
  PluginStatus p;
  p.name = name;
  p.prometheus_port = port;
  p.state = state;
  p.checks[name] = "";
  return p;
}

// A loopback HTTP server on port 0 that answers GET /metrics with `handler`.
class TestHttpServer {
 public:
  using Handler = std::function<void(httplib::Response&)>;
  explicit TestHttpServer(Handler handler) {
    server_.Get("/metrics",
                [handler](const httplib::Request&, httplib::Response& res) {
                  handler(res);
                });
    auto listening = std::make_shared<absl::Notification>();
    server_.new_task_queue = [listening] {
      listening->Notify();
      return new httplib::ThreadPool(2);
    };
    port_ = static_cast<uint16_t>(server_.bind_to_any_port("127.0.0.1"));
    thread_ = std::thread([this, listening] {
      server_.listen_after_bind();
      if (!listening->HasBeenNotified()) listening->Notify();
    });
    listening->WaitForNotification();
  }
  ~TestHttpServer() {
    server_.stop();
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  httplib::Server server_;
  std::thread thread_;
  uint16_t port_ = 0;
};

std::unique_ptr<TestHttpServer> CannedPlugin(std::string text) {
  return std::make_unique<TestHttpServer>([text](httplib::Response& res) {
    res.set_content(text, "text/plain; version=0.0.4");
  });
}

// A plugin whose /metrics handler blocks until the test ends.
class HangingPlugin {
 public:
  HangingPlugin()
      : server_([this](httplib::Response& res) {
          release_.WaitForNotification();
          res.set_content("late 1\n", "text/plain");
        }) {}
  ~HangingPlugin() { release_.Notify(); }  // before server_ joins its threads
  uint16_t port() const { return server_.port(); }

 private:
  absl::Notification release_;
  TestHttpServer server_;
};

// A plugin with real prometheus-cpp metrics behind an Exposer on 127.0.0.1:0.
class ExposerPlugin {
 public:
  explicit ExposerPlugin(const std::string& name)
      : exposer_("127.0.0.1:0"),
        registry_(std::make_shared<prometheus::Registry>()) {
    prometheus::BuildCounter()
        .Name("loop_example_events_total")
        .Help("Events the example loop published.")
        .Register(*registry_)
        .Add({{"source", name}})
        .Increment(3);
    prometheus::BuildGauge()
        .Name(name + "_queue_depth")
        .Help("Events waiting in the plugin's queue.")
        .Register(*registry_)
        .Add({})
        .Set(2);
    exposer_.RegisterCollectable(registry_);
  }
  uint16_t port() {
    return static_cast<uint16_t>(exposer_.GetListeningPorts().front());
  }

 private:
  prometheus::Exposer exposer_;
  std::shared_ptr<prometheus::Registry> registry_;
};

class OperatorServerTest : public ::testing::Test {
 protected:
  void StartServer(absl::Duration scrape_timeout = absl::Seconds(5)) {
    OperatorServerOptions options;
    options.listen = HostPort{"127.0.0.1", 0};
    options.scrape_timeout = scrape_timeout;
    options.node_name = "node-a";
    server_ = std::make_unique<OperatorServer>(options, directory_, metrics_);
    ASSERT_THAT(server_->Start(), IsOk());
    ASSERT_NE(server_->port(), 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(std::chrono::seconds(30));
  }

  httplib::Result Get(const std::string& path, httplib::Headers headers = {}) {
    return client_->Get(path, headers);
  }

  FakePluginDirectory directory_;
  HostMetrics metrics_;
  std::unique_ptr<OperatorServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

// How many times `line` occurs as a whole line of `text`.
int CountLines(const std::string& text, const std::string& line) {
  int n = 0;
  for (absl::string_view l : absl::StrSplit(text, '\n')) n += l == line;
  return n;
}

TEST_F(OperatorServerTest, HealthzAndUnknownPath) {
  StartServer();
  auto res = Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\n");

  res = Get("/nope");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(res->body, "not found: /nope\n");
}

TEST_F(OperatorServerTest, MetricsMergesHostAndPluginsIntoOneExposition) {
  ExposerPlugin ptp("ptp");
  ExposerPlugin http("http");
  // Declares the host's gauge as a counter (dropped, counted) plus a family of
  // its own, and repeats the series ptp gives (dropped as a duplicate).
  auto canned = CannedPlugin(
      "# HELP loop_plugin_up Not the host's.\n# TYPE loop_plugin_up counter\n"
      "loop_plugin_up 5\n"
      "# HELP canned_things Things.\n# TYPE canned_things gauge\ncanned_things "
      "1\n"
      "# HELP loop_example_events_total Events.\n# TYPE "
      "loop_example_events_total counter\n"
      "loop_example_events_total{source=\"ptp\"} 100\n");
  // Sorted by name, as the supervisor lists them: zcanned is the last source.
  directory_.Set({Plugin("http", http.port()), Plugin("inproc", 0),
                  Plugin("ptp", ptp.port()),
                  Plugin("zcanned", canned->port())});
  metrics_.SetPluginUp("ptp", true);
  StartServer();

  auto res = Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4");
  const std::string& text = res->body;

  ParsedExposition parsed = ParseExposition(text);
  EXPECT_THAT(parsed.errors, ::testing::IsEmpty());
  std::set<std::string> names;
  for (const ExpositionFamily& f : parsed.families) {
    EXPECT_TRUE(names.insert(f.name).second) << "family twice: " << f.name;
  }
  for (const std::string family :
       {"loop_plugin_up", "loop_plugin_restarts_total",
        "loop_example_events_total", "ptp_queue_depth", "http_queue_depth",
        "canned_things", "exposer_scrapes_total"}) {
    EXPECT_EQ(CountLines(text, absl::StrCat("# TYPE ", family,
                                            absl::StrContains(family, "total")
                                                ? " counter"
                                                : " gauge")),
              1)
        << family << " in\n"
        << text;
  }
  EXPECT_EQ(CountLines(text, "loop_plugin_up{plugin=\"ptp\"} 1"), 1);
  EXPECT_EQ(CountLines(text, "loop_plugin_up 5"),
            0);  // the conflicting family is left out
  EXPECT_EQ(CountLines(text, "loop_example_events_total{source=\"ptp\"} 3"), 1);
  EXPECT_EQ(CountLines(text, "loop_example_events_total{source=\"http\"} 3"),
            1);
  EXPECT_THAT(text,
              Not(HasSubstr("loop_example_events_total{source=\"ptp\"} 100")));

  // The conflict is counted against the plugin that lost it.
  res = Get("/metrics?plugins=none");
  ASSERT_TRUE(res);
  EXPECT_THAT(
      res->body,
      HasSubstr("loop_plugin_metric_conflicts_total{plugin=\"zcanned\"} 1\n"));
}

TEST_F(OperatorServerTest, PluginsNoneServesOnlyHostMetrics) {
  auto ptp = CannedPlugin(
      "# HELP ptp_queue_depth Depth.\n# TYPE ptp_queue_depth "
      "gauge\nptp_queue_depth 2\n");
  directory_.Set({Plugin("ptp", ptp->port())});
  metrics_.SetPluginUp("ptp", true);
  StartServer();
  auto res = Get("/metrics?plugins=none");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->body, HasSubstr("loop_plugin_up{plugin=\"ptp\"} 1\n"));
  EXPECT_THAT(res->body, Not(HasSubstr("ptp_queue_depth")));

  res = Get("/metrics?plugins=some");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
}

TEST_F(OperatorServerTest, PluginThatNeverAnswersIsLeftOutAndCounted) {
  HangingPlugin slow;
  auto good = CannedPlugin(
      "# HELP good_things Things.\n# TYPE good_things gauge\ngood_things 1\n");
  directory_.Set({Plugin("good", good->port()), Plugin("slow", slow.port())});
  StartServer(absl::Milliseconds(200));

  auto res = Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->body, HasSubstr("good_things 1\n"));
  EXPECT_THAT(res->body, Not(HasSubstr("late")));
  EXPECT_THAT(
      res->body,
      HasSubstr("loop_plugin_scrape_failures_total{plugin=\"slow\"} 1\n"));
  EXPECT_THAT(
      res->body,
      Not(HasSubstr("loop_plugin_scrape_failures_total{plugin=\"good\"}")));

  res = Get("/plugins/slow/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_THAT(res->body, AllOf(HasSubstr(absl::StrCat("http://127.0.0.1:",
                                                      slow.port(), "/metrics")),
                               HasSubstr("timed out")));
}

TEST_F(OperatorServerTest, DiscoveryHasHostGroupAndOneGroupPerPluginWithPort) {
  directory_.Set({Plugin("http", 0), Plugin("ptp", 20001)});
  StartServer();
  auto res = Get("/discovery", {{"Host", "node-a.example:9091"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  const json want = json::parse(R"([
    {"targets": ["node-a.example:9091"],
     "labels": {"__metrics_path__": "/metrics", "__param_plugins": "none", "node": "node-a"}},
    {"targets": ["node-a.example:9091"],
     "labels": {"__metrics_path__": "/plugins/ptp/metrics", "plugin": "ptp", "node": "node-a"}}
  ])");
  EXPECT_EQ(json::parse(res->body), want);
}

TEST_F(OperatorServerTest, PluginMetricsIsProxiedAsIs) {
  const std::string text =
      "# TYPE odd gauge\nodd{a=\"1\"}   7\n";  // spacing kept
  auto canned = CannedPlugin(text);
  directory_.Set({Plugin("canned", canned->port()), Plugin("inproc", 0)});
  StartServer();

  auto res = Get("/plugins/canned/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, text);

  res = Get("/plugins/nosuch/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(res->body, "unknown plugin \"nosuch\"\n");

  res = Get("/plugins/inproc/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(res->body, "plugin \"inproc\" has no metrics port\n");
}

TEST_F(OperatorServerTest, PluginsListsStatusAsJson) {
  PluginStatus ptp = Plugin("ptp", 20001);
  ptp.version = "1.2.3";
  ptp.kinds = {"event_source"};
  ptp.command = "/usr/bin/loop-ptp";
  ptp.pid = 4242;
  ptp.started_at = absl::Now() - absl::Seconds(90);
  ptp.restarts = 2;
  ptp.checks["ptp.ts2phc"] = "no lock";
  PluginStatus http = Plugin("http", 0, PluginState::kBackoff);
  http.in_process = true;
  http.last_error = "exited with status 1";
  directory_.Set({http, ptp});
  StartServer();

  auto res = Get("/plugins");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  json list = json::parse(res->body);
  ASSERT_EQ(list.size(), 2u);
  const json& h = list[0];
  EXPECT_EQ(h["name"], "http");
  EXPECT_EQ(h["state"], "backoff");
  EXPECT_EQ(h["in_process"], true);
  EXPECT_TRUE(h["started_at"].is_null());
  EXPECT_TRUE(h["uptime_seconds"].is_null());
  EXPECT_EQ(h["last_error"], "exited with status 1");
  const json& p = list[1];
  EXPECT_EQ(p["name"], "ptp");
  EXPECT_EQ(p["version"], "1.2.3");
  EXPECT_EQ(p["kinds"], json::array({"event_source"}));
  EXPECT_EQ(p["in_process"], false);
  EXPECT_EQ(p["command"], "/usr/bin/loop-ptp");
  EXPECT_EQ(p["state"], "serving");
  EXPECT_EQ(p["pid"], 4242);
  EXPECT_EQ(p["restarts"], 2);
  EXPECT_EQ(p["prometheus_port"], 20001);
  EXPECT_EQ(p["started_at"],
            absl::FormatTime(absl::RFC3339_full, ptp.started_at,
                             absl::UTCTimeZone()));
  EXPECT_GE(p["uptime_seconds"].get<int64_t>(), 90);
  EXPECT_EQ(p["checks"], json({{"ptp", ""}, {"ptp.ts2phc", "no lock"}}));
}

TEST_F(OperatorServerTest, HealthTextAndJson) {
  PluginStatus ptp = Plugin("ptp", 0);
  ptp.checks["ptp.ts2phc"] = "no lock\nsince 10s";
  directory_.Set({Plugin("http", 0), ptp});
  StartServer();

  auto res = Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->body,
            "ok http\nok ptp\n!  ptp.ts2phc\n\tno lock\n\tsince 10s\n");

  res = Get("/health", {{"Accept", "application/json"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(json::parse(res->body),
            json::parse(R"({"status": "failing", "checks": {
      "http": {"status": "ok"}, "ptp": {"status": "ok"},
      "ptp.ts2phc": {"status": "failing", "error": "no lock\nsince 10s"}}})"));

  directory_.Set({Plugin("http", 0)});
  res = Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok http\n");
  res = Get("/health", {{"Accept", "application/json"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(
      json::parse(res->body),
      json::parse(R"({"status": "ok", "checks": {"http": {"status": "ok"}}})"));
}

TEST_F(OperatorServerTest, ReadyzWantsEveryPluginServing) {
  PluginStatus http = Plugin("http", 0, PluginState::kBackoff);
  http.last_error = "handshake: timed out after 5s";
  directory_.Set({http, Plugin("ptp", 0)});
  StartServer();

  auto res = Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->body,
            "not ready:\nhttp: backoff: handshake: timed out after 5s\n");

  directory_.Set({Plugin("http", 0), Plugin("ptp", 0)});
  res = Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\n");
}

TEST_F(OperatorServerTest, BindErrorNamesTheAddressAndErrno) {
  StartServer();
  OperatorServerOptions options;
  options.listen = HostPort{"127.0.0.1", server_->port()};
  OperatorServer second(options, directory_, metrics_);
  EXPECT_THAT(
      second.Start(),
      StatusIs(absl::StatusCode::kUnavailable,
               AllOf(HasSubstr(absl::StrCat("127.0.0.1:", server_->port())),
                     HasSubstr("Address already in use"))));
}

TEST_F(OperatorServerTest, StopRightAfterStartAndTwice) {
  StartServer();
  server_->Stop();
  server_->Stop();
  EXPECT_FALSE(Get("/healthz"));
}

#ifdef LH_PROMTOOL
TEST_F(OperatorServerTest, PromtoolFindsNothingToComplainAbout) {
  ExposerPlugin ptp("ptp");
  directory_.Set(
      {Plugin("ptp", ptp.port()), Plugin("http", 0, PluginState::kBackoff)});
  metrics_.SetPluginUp("ptp", true);
  metrics_.SetPluginUp("http", false);
  metrics_.IncPluginRestarts("http");
  metrics_.SetPluginHealth("ptp", {{"ptp", ""}, {"ptp.ts2phc", "no lock"}});
  metrics_.ObserveRpc("ptp", "Describe", absl::Microseconds(300), true);
  metrics_.IncScrapeFailure("http");
  metrics_.IncMetricConflict("http");
  StartServer();

  auto res = Get("/metrics");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const std::string path =
      ::testing::TempDir() + "/operator_server_test_metrics.txt";
  std::ofstream(path) << res->body;
  const std::string command =
      absl::StrCat("'", LH_PROMTOOL, "' check metrics < '", path, "' 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof(buffer), pipe)) > 0;)
    output.append(buffer, n);
  const int status = pclose(pipe);
  EXPECT_EQ(output, "") << "exposition:\n" << res->body;
  EXPECT_EQ(status, 0);
}
#endif

}  // namespace
}  // namespace loophost::host
