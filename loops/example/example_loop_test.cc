// Tests of the example loop, served in-process as the host would run it.
#include "loops/example/example_loop.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/metric_family.h>

#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "loophost/v1/echo.grpc.pb.h"
#include "loophost/v1/plugin.grpc.pb.h"
#include "loops/sdk/loop_server.h"

namespace loophost::loops::example {
namespace {

using ::loophost::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::Pair;

class ExampleLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = sdk::LoopServer::StartInProcess(MakeExampleLoop(), {});
    ASSERT_THAT(server, IsOk());
    server_ = std::move(*server);
  }

  std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    return context;
  }

  // The value of counter `name` in the loop's registry, -1 if absent.
  double CounterValue(const std::string& name) {
    for (const prometheus::MetricFamily& family :
         server_->metrics().Collect()) {
      if (family.name == name && !family.metric.empty()) {
        return family.metric.front().counter.value;
      }
    }
    return -1;
  }

  std::unique_ptr<sdk::LoopServer> server_;
};

TEST_F(ExampleLoopTest, DescribesItself) {
  v1::DescribeResponse response;
  ASSERT_TRUE(v1::Plugin::NewStub(server_->InProcessChannel())
                  ->Describe(Context().get(), {}, &response)
                  .ok());
  EXPECT_EQ(response.name(), "example");
  EXPECT_EQ(response.version(), LH_VERSION);
  EXPECT_TRUE(response.kinds().empty());
}

TEST_F(ExampleLoopTest, EchoReturnsThePayloadAndCountsIt) {
  EXPECT_EQ(CounterValue("loop_example_echo_requests_total"), 0);
  auto stub = v1::Echo::NewStub(server_->InProcessChannel());
  v1::EchoRequest request;
  request.set_payload(std::string("\0binary\xff", 8));
  v1::EchoResponse response;
  ASSERT_TRUE(stub->Echo(Context().get(), request, &response).ok());
  EXPECT_EQ(response.payload(), request.payload());
  EXPECT_EQ(CounterValue("loop_example_echo_requests_total"), 1);
}

TEST_F(ExampleLoopTest, ReportsItsEchoCheckHealthy) {
  v1::HealthReportResponse response;
  ASSERT_TRUE(v1::Plugin::NewStub(server_->InProcessChannel())
                  ->HealthReport(Context().get(), {}, &response)
                  .ok());
  EXPECT_THAT(response.checks(), ElementsAre(Pair("example.echo", "")));
}

}  // namespace
}  // namespace loophost::loops::example
