// Tests of LoopServer through its gRPC surface, as the host sees it: the
// in-process channel, a unix socket in a temp dir, and the /metrics endpoint
// on a port the exposer bound itself (127.0.0.1:0).
#include "loops/sdk/loop_server.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/server_callback.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/counter.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "common/unique_fd.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "loophost/v1/echo.grpc.pb.h"
#include "loophost/v1/plugin.grpc.pb.h"
#include "plugin/grpc_controller.grpc.pb.h"

namespace loophost::sdk {
namespace {

using ::loophost::testing::IsOk;
using ::loophost::testing::StatusIs;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr absl::Duration kRpcTimeout = absl::Seconds(5);

// What the test loop lets the test observe.
struct Probe {
  std::atomic<int> starts{0};
  std::atomic<int> stops{0};
  absl::Status start_result;
};

class TestEcho final : public v1::Echo::CallbackService {
 public:
  prometheus::Counter* calls = nullptr;
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const v1::EchoRequest* request,
                                 v1::EchoResponse* response) override {
    calls->Increment();
    response->set_payload(request->payload());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

class TestLoop final : public Loop {
 public:
  explicit TestLoop(Probe& probe) : probe_(probe) {}
  std::string Name() const override { return "test"; }
  std::string Version() const override { return "1.2.3"; }
  std::vector<std::string> Kinds() const override { return {"event_source"}; }
  std::vector<grpc::Service*> Services() override { return {&echo_}; }
  absl::Status Start(LoopContext& ctx) override {
    ++probe_.starts;
    if (!probe_.start_result.ok()) return probe_.start_result;
    echo_.calls = &prometheus::BuildCounter()
                       .Name("test_echo_total")
                       .Help("Echo calls.")
                       .Register(ctx.metrics)
                       .Add({});
    ctx.health.Set("test.ready", "");
    return absl::OkStatus();
  }
  void Stop() override { ++probe_.stops; }

 private:
  Probe& probe_;
  TestEcho echo_;
};

void SetDeadline(grpc::ClientContext& context) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + kRpcTimeout));
}

// Runs server.Wait() on a thread and tells whether it returned in time; if
// not, forces the shutdown so that the test ends.
::testing::AssertionResult WaitReturnsWithin(LoopServer& server,
                                             absl::Duration timeout) {
  absl::Notification done;
  std::thread waiter([&] {
    server.Wait();
    done.Notify();
  });
  bool in_time = done.WaitForNotificationWithTimeout(timeout);
  if (!in_time) server.RequestShutdown();
  waiter.join();
  if (in_time) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "Wait() did not return within " << timeout;
}

// A plain HTTP/1.0 GET on 127.0.0.1:port; the body, or "" on any failure.
std::string HttpGet(int port, const std::string& path) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval timeout{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    return "";
  }
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return "";
  }
  std::string response;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd.get(), buf, sizeof(buf), 0)) > 0) {
    response.append(buf, static_cast<size_t>(n));
  }
  size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

class LoopServerTest : public ::testing::Test {
 protected:
  absl::StatusOr<std::unique_ptr<LoopServer>> StartInProcess(
      LoopEnv env = {}, const LoopServerOptions& options = {}) {
    return LoopServer::StartInProcess(std::make_unique<TestLoop>(probe_),
                                      std::move(env), options);
  }

  Probe probe_;
};

TEST_F(LoopServerTest, DescribeSaysWhoTheLoopIs) {
  auto server = StartInProcess();
  ASSERT_THAT(server, IsOk());
  auto stub = v1::Plugin::NewStub((*server)->InProcessChannel());
  grpc::ClientContext context;
  SetDeadline(context);
  v1::DescribeResponse response;
  ASSERT_TRUE(stub->Describe(&context, {}, &response).ok());
  EXPECT_EQ(response.name(), "test");
  EXPECT_EQ(response.version(), "1.2.3");
  EXPECT_THAT(response.kinds(), ElementsAre("event_source"));
}

TEST_F(LoopServerTest, GrpcHealthIsServingForPluginAndServer) {
  auto server = StartInProcess();
  ASSERT_THAT(server, IsOk());
  auto stub = grpc::health::v1::Health::NewStub((*server)->InProcessChannel());
  for (const char* service : {"plugin", ""}) {
    grpc::ClientContext context;
    SetDeadline(context);
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(stub->Check(&context, request, &response).ok()) << service;
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING)
        << service;
  }
}

TEST_F(LoopServerTest, HealthReportHasTheLoopsChecks) {
  auto server = StartInProcess();
  ASSERT_THAT(server, IsOk());
  (*server)->health().Set("test.db", "connection refused");
  auto stub = v1::Plugin::NewStub((*server)->InProcessChannel());
  grpc::ClientContext context;
  SetDeadline(context);
  v1::HealthReportResponse response;
  ASSERT_TRUE(stub->HealthReport(&context, {}, &response).ok());
  EXPECT_THAT(response.checks(),
              UnorderedElementsAre(Pair("test.ready", ""),
                                   Pair("test.db", "connection refused")));
}

TEST_F(LoopServerTest, WatchHealthSendsReportThenChangesAndEndsAtShutdown) {
  auto server = StartInProcess();
  ASSERT_THAT(server, IsOk());
  auto stub = v1::Plugin::NewStub((*server)->InProcessChannel());
  grpc::ClientContext context;
  SetDeadline(context);
  auto reader = stub->WatchHealth(&context, {});

  v1::HealthReportResponse report;
  ASSERT_TRUE(reader->Read(&report));
  EXPECT_THAT(report.checks(), ElementsAre(Pair("test.ready", "")));

  (*server)->health().Set("test.ready", "");  // no change: no message
  (*server)->health().Set("test.ready", "not yet");
  ASSERT_TRUE(reader->Read(&report));
  EXPECT_THAT(report.checks(), ElementsAre(Pair("test.ready", "not yet")));

  // An open stream must not hold the server: shutdown ends it with OK.
  (*server)->RequestShutdown();
  EXPECT_TRUE(WaitReturnsWithin(**server, absl::Seconds(3)));
  EXPECT_FALSE(reader->Read(&report));
  grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(LoopServerTest, WatchHealthEndsWhenTheClientCancels) {
  auto server = StartInProcess();
  ASSERT_THAT(server, IsOk());
  auto stub = v1::Plugin::NewStub((*server)->InProcessChannel());
  grpc::ClientContext context;
  SetDeadline(context);
  auto reader = stub->WatchHealth(&context, {});
  v1::HealthReportResponse report;
  ASSERT_TRUE(reader->Read(&report));
  context.TryCancel();
  EXPECT_FALSE(reader->Read(&report));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // Later changes reach no one and break nothing.
  (*server)->health().Set("test.ready", "x");
}

TEST_F(LoopServerTest, ServesTheLoopsOwnServices) {
  auto server = StartInProcess();
  ASSERT_THAT(server, IsOk());
  auto stub = v1::Echo::NewStub((*server)->InProcessChannel());
  grpc::ClientContext context;
  SetDeadline(context);
  v1::EchoRequest request;
  request.set_payload("ping");
  v1::EchoResponse response;
  ASSERT_TRUE(stub->Echo(&context, request, &response).ok());
  EXPECT_EQ(response.payload(), "ping");
}

TEST_F(LoopServerTest, ShutdownRpcAnswersThenStopsTheServer) {
  auto server = StartInProcess();
  ASSERT_THAT(server, IsOk());
  auto stub = ::plugin::GRPCController::NewStub((*server)->InProcessChannel());
  grpc::ClientContext context;
  SetDeadline(context);
  ::plugin::Empty response;
  grpc::Status status = stub->Shutdown(&context, {}, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(WaitReturnsWithin(**server, absl::Seconds(3)));
  EXPECT_EQ(probe_.stops.load(), 1);
  // No call after this: gRPC 1.51 crashes on a call over an in-process
  // channel whose server has shut down (see InProcessChannel()).
}

TEST_F(LoopServerTest, DestructorStopsTheLoopOnce) {
  {
    auto server = StartInProcess();
    ASSERT_THAT(server, IsOk());
    (*server)->RequestShutdown();
    (*server)->RequestShutdown();  // idempotent
    (*server)->Wait();
    (*server)->Wait();  // returns at once
  }
  EXPECT_EQ(probe_.starts.load(), 1);
  EXPECT_EQ(probe_.stops.load(), 1);
}

TEST_F(LoopServerTest, StartErrorFailsTheStartWithoutStop) {
  probe_.start_result = absl::FailedPreconditionError("no config");
  auto server = StartInProcess();
  EXPECT_THAT(server, StatusIs(absl::StatusCode::kFailedPrecondition,
                               HasSubstr("loop test: start: no config")));
  EXPECT_EQ(probe_.stops.load(), 0);
}

TEST_F(LoopServerTest, BadPrometheusPortFailsBeforeStart) {
  auto server = StartInProcess({{"LOOP_PROMETHEUS_PORT", "http"}});
  EXPECT_THAT(server, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("LOOP_PROMETHEUS_PORT=http")));
  EXPECT_EQ(probe_.starts.load(), 0);
}

TEST_F(LoopServerTest, PrometheusPortZeroMeansNoExposer) {
  auto server = StartInProcess({{"LOOP_PROMETHEUS_PORT", "0"}});
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ((*server)->metrics_port(), 0);
}

TEST_F(LoopServerTest, ExposerServesTheLoopsMetrics) {
  LoopServerOptions options;
  options.metrics_address = "127.0.0.1:0";
  auto server = StartInProcess({}, options);
  ASSERT_THAT(server, IsOk());
  const int port = (*server)->metrics_port();
  ASSERT_GT(port, 0);

  auto stub = v1::Echo::NewStub((*server)->InProcessChannel());
  grpc::ClientContext context;
  SetDeadline(context);
  v1::EchoResponse response;
  ASSERT_TRUE(stub->Echo(&context, {}, &response).ok());

  EXPECT_THAT(HttpGet(port, "/metrics"), HasSubstr("\ntest_echo_total 1\n"));
}

class UnixSocketTest : public LoopServerTest {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/loop_server_test.XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
};

TEST_F(UnixSocketTest, ServesOnTheSocket) {
  const std::string path = dir_ + "/test.sock";
  auto server = LoopServer::StartOnUnixSocket(
      std::make_unique<TestLoop>(probe_), {}, path);
  ASSERT_THAT(server, IsOk());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));

  auto channel =
      grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials());
  grpc::ClientContext describe_context;
  SetDeadline(describe_context);
  describe_context.set_wait_for_ready(true);
  v1::DescribeResponse describe;
  ASSERT_TRUE(v1::Plugin::NewStub(channel)
                  ->Describe(&describe_context, {}, &describe)
                  .ok());
  EXPECT_EQ(describe.name(), "test");

  grpc::ClientContext echo_context;
  SetDeadline(echo_context);
  v1::EchoRequest request;
  request.set_payload("over the socket");
  v1::EchoResponse response;
  ASSERT_TRUE(
      v1::Echo::NewStub(channel)->Echo(&echo_context, request, &response).ok());
  EXPECT_EQ(response.payload(), "over the socket");

  grpc::ClientContext shutdown_context;
  SetDeadline(shutdown_context);
  ::plugin::Empty empty;
  ASSERT_TRUE(::plugin::GRPCController::NewStub(channel)
                  ->Shutdown(&shutdown_context, {}, &empty)
                  .ok());
  EXPECT_TRUE(WaitReturnsWithin(**server, absl::Seconds(3)));
}

TEST_F(UnixSocketTest, MissingDirectoryFailsTheStart) {
  const std::string path = dir_ + "/no/such/dir/test.sock";
  auto server = LoopServer::StartOnUnixSocket(
      std::make_unique<TestLoop>(probe_), {}, path);
  EXPECT_THAT(server, StatusIs(absl::StatusCode::kUnavailable,
                               HasSubstr("cannot listen on unix:" + path)));
  // The loop had started, so it is stopped again.
  EXPECT_EQ(probe_.stops.load(), 1);
}

}  // namespace
}  // namespace loophost::sdk
