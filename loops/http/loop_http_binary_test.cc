// The real loop-http binary: by itself as a go-plugin child (handshake,
// Deliver and CheckEndpoint over its unix socket, a start refused for a
// TRANSPORT_HOST that is not http(s)), and under the real loophost, where it
// is on by default (in-process), runs as a child with HTTP_PLUGIN_CMD and
// reports its health check and metrics through the operator endpoints.
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "loophost/v1/plugin.grpc.pb.h"
#include "loophost/v1/transport.grpc.pb.h"
#include "loops/http/loopback_http_server.h"
#include "tests/testing/child_process.h"
#include "tests/testing/loophost_process.h"

#ifndef LOOP_HTTP_PATH
#error "LOOP_HTTP_PATH must name the loop-http binary"
#endif

namespace loophost::loops::http {
namespace {

using ::loophost::testing::ChildOptions;
using ::loophost::testing::ChildProcess;
using ::loophost::testing::IsOk;
using ::loophost::testing::LoophostOptions;
using ::loophost::testing::LoophostProcess;
using ::loophost::testing::ReadFileOrEmpty;
using ::loophost::testing::TempDir;
using ::loophost::testing::WaitFor;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kTimeout = absl::Seconds(20);

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  return context;
}

// loop-http started as a go-plugin host starts it.
class LoopHttpChild {
 public:
  bool Start(const std::string& transport_host) {
    auto dir = TempDir::Create("lh-loop-http-");
    if (!dir.ok()) return false;
    dir_.emplace(*std::move(dir));
    const std::string sockets = dir_->Join("sock");
    ::mkdir(sockets.c_str(), 0700);
    ChildOptions options;
    options.argv = {LOOP_HTTP_PATH};
    options.env = {"LOOPHOST_PLUGIN_COOKIE=d2a4c6e8-loophost-v1",
                   "PLUGIN_PROTOCOL_VERSIONS=1",
                   "PLUGIN_UNIX_SOCKET_DIR=" + sockets,
                   "LOOP_NAME=http",
                   "NODE_NAME=test-node",
                   "LOOP_PROMETHEUS_PORT=0",
                   "TRANSPORT_HOST=" + transport_host,
                   "HTTP_TRANSPORT_TIMEOUT=3s",
                   "PATH=/usr/bin:/bin"};
    options.stdout_path = dir_->Join("stdout");
    options.stderr_path = dir_->Join("stderr");
    auto child = ChildProcess::Spawn(options);
    if (!child.ok()) return false;
    child_ = *std::move(child);
    return true;
  }

  // The socket path from the handshake line `1|1|unix|PATH|grpc|`.
  ::testing::AssertionResult Handshake(std::string* socket_path) {
    std::string line;
    auto got_line = WaitFor(
        [&] {
          std::string out = ReadFileOrEmpty(dir_->Join("stdout"));
          size_t nl = out.find('\n');
          if (nl == std::string::npos) return !child_->running();
          line = out.substr(0, nl);
          return true;
        },
        kTimeout, "the handshake line");
    if (!got_line) return got_line;
    std::vector<std::string> fields = absl::StrSplit(line, '|');
    if (fields.size() != 6 || fields[2] != "unix" || fields[4] != "grpc") {
      return ::testing::AssertionFailure()
             << "handshake line \"" << line << "\"; stderr: " << Stderr();
    }
    *socket_path = fields[3];
    return ::testing::AssertionSuccess();
  }

  std::string Stderr() const { return ReadFileOrEmpty(dir_->Join("stderr")); }
  ChildProcess& process() { return *child_; }

 private:
  std::optional<TempDir> dir_;
  std::unique_ptr<ChildProcess> child_;
};

TEST(LoopHttpBinaryTest, DeliversOverItsUnixSocketAndStopsOnSigterm) {
  LoopbackHttpServer subscriber(204);
  {
    LoopHttpChild child;
    ASSERT_TRUE(child.Start("http://localhost:9085"));
    std::string socket_path;
    ASSERT_TRUE(child.Handshake(&socket_path));
    auto channel = grpc::CreateChannel("unix:" + socket_path,
                                       grpc::InsecureChannelCredentials());

    v1::DescribeResponse describe;
    ASSERT_TRUE(v1::Plugin::NewStub(channel)
                    ->Describe(Context().get(), {}, &describe)
                    .ok());
    EXPECT_EQ(describe.name(), "http");
    EXPECT_THAT(describe.kinds(), ElementsAre("transport"));
    v1::HealthReportResponse report;
    ASSERT_TRUE(v1::Plugin::NewStub(channel)
                    ->HealthReport(Context().get(), {}, &report)
                    .ok());
    EXPECT_EQ(report.checks().at("http.transport"), "");

    auto stub = v1::Transport::NewStub(channel);
    auto context = Context();
    auto stream = stub->Deliver(context.get());
    v1::DeliveryBatch batch;
    for (uint64_t id = 1; id <= 3; ++id) {
      v1::Delivery& d = *batch.add_deliveries();
      d.set_delivery_id(id);
      d.set_endpoint(subscriber.Url("/events"));
      d.set_body(absl::StrCat(R"({"id":")", id, R"("})"));
      d.set_content_type("application/json");
    }
    ASSERT_TRUE(stream->Write(batch));
    ASSERT_TRUE(stream->WritesDone());
    std::vector<uint64_t> delivered;
    v1::DeliveryResultBatch results;
    while (stream->Read(&results)) {
      for (const v1::DeliveryResult& r : results.results()) {
        EXPECT_TRUE(r.delivered()) << r.error();
        EXPECT_EQ(r.http_status(), 204);
        delivered.push_back(r.delivery_id());
      }
    }
    EXPECT_TRUE(stream->Finish().ok());
    EXPECT_THAT(delivered, ::testing::UnorderedElementsAre(1, 2, 3));
    EXPECT_EQ(subscriber.requests(), 3);

    v1::CheckEndpointRequest check;
    check.set_endpoint(subscriber.Url("/check"));
    v1::CheckEndpointResponse checked;
    ASSERT_TRUE(stub->CheckEndpoint(Context().get(), check, &checked).ok());
    EXPECT_EQ(checked.http_status(), 204);

    ASSERT_THAT(child.process().Signal(SIGTERM), IsOk());
    auto exit = child.process().Wait(kTimeout);
    ASSERT_THAT(exit, IsOk());
    EXPECT_TRUE(exit->ExitedWith(0)) << exit->ToString() << child.Stderr();
  }  // the child's connections are closed before the subscriber stops
}

TEST(LoopHttpBinaryTest, ATransportHostThatIsNotHttpFailsTheStart) {
  LoopHttpChild child;
  ASSERT_TRUE(child.Start("amqp://localhost:5672"));
  auto exit = child.process().Wait(kTimeout);
  ASSERT_THAT(exit, IsOk());
  EXPECT_TRUE(exit->ExitedWith(1)) << exit->ToString();
  EXPECT_THAT(child.Stderr(),
              HasSubstr("TRANSPORT_HOST=amqp://localhost:5672: scheme "
                        "\\\"amqp\\\" is not http or https"));
}

class LoopHttpUnderLoophostTest : public ::testing::TestWithParam<bool> {};

TEST_P(LoopHttpUnderLoophostTest, ServingAndHealthy) {
  const bool child = GetParam();
  LoophostOptions options;
  options.binary = LH_LOOPHOST_BINARY;
  options.env = {{"TRANSPORT_HOST", "http://127.0.0.1:9085"}};
  if (child) options.env["HTTP_PLUGIN_CMD"] = LOOP_HTTP_PATH;
  auto host = LoophostProcess::Start(std::move(options));
  ASSERT_THAT(host, IsOk());
  LoophostProcess& h = **host;
  // Serving, and its first health report (it follows on the health stream).
  ASSERT_TRUE(h.WaitFor(
      [&] {
        auto p = h.Plugin("http");
        return h.PluginState("http") == "serving" && p.has_value() &&
               (*p)["checks"].contains("http.transport");
      },
      kTimeout, "http serving with its check"));
  auto plugin = h.Plugin("http");
  ASSERT_TRUE(plugin.has_value());
  EXPECT_EQ((*plugin)["in_process"], !child);
  EXPECT_EQ((*plugin)["kinds"], nlohmann::json::array({"transport"}));
  EXPECT_EQ((*plugin)["checks"]["http.transport"], "") << *plugin;

  auto health = h.Get("/health");
  ASSERT_THAT(health, IsOk());
  EXPECT_EQ(health->status, 200) << health->body;
  EXPECT_THAT(health->body, HasSubstr("ok http.transport\n"));
  auto metrics = h.Get("/plugins/http/metrics");
  ASSERT_THAT(metrics, IsOk());
  EXPECT_EQ(metrics->status, 200);
  // (The cne_* families have a series per subscriber: none before the first
  // delivery.)
  EXPECT_THAT(metrics->body, HasSubstr("loop_http_deliveries_pending 0"));
  EXPECT_THAT(metrics->body,
              HasSubstr("# TYPE loop_http_request_duration_seconds histogram"));
  if (child) {
    // TRANSPORT_HOST reached the child: its start log line names it.
    EXPECT_TRUE(h.WaitFor(
        [&] {
          return !h.LogLines({"http transport ready", "127.0.0.1:9085"})
                      .empty();
        },
        kTimeout, "the transport's start line"));
  }
  auto stopped = h.Stop();
  ASSERT_THAT(stopped, IsOk());
  EXPECT_TRUE(stopped->ExitedWith(0)) << stopped->ToString();
}

INSTANTIATE_TEST_SUITE_P(InProcessAndChild, LoopHttpUnderLoophostTest,
                         ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "Child" : "InProcess";
                         });

TEST(LoopHttpUnderLoophost, HttpPluginFalseTurnsItOff) {
  LoophostOptions options;
  options.binary = LH_LOOPHOST_BINARY;
  options.env = {{"HTTP_PLUGIN", "false"}, {"EXAMPLE_PLUGIN", "true"}};
  auto host = LoophostProcess::Start(std::move(options));
  ASSERT_THAT(host, IsOk());
  LoophostProcess& h = **host;
  ASSERT_TRUE(h.WaitFor([&] { return h.PluginState("example") == "serving"; },
                        kTimeout, "example serving"));
  EXPECT_FALSE(h.Plugin("http").has_value());
}

}  // namespace
}  // namespace loophost::loops::http
