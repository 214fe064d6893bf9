// The HTTP transport loop served in-process, as the host runs it: Deliver and
// CheckEndpoint against real loopback subscribers, the results, metrics,
// health and Describe, and its configuration from the environment.
#include "loops/http/http_transport_loop.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_matchers.h"
#include "events/cloud_event_json.h"
#include "loophost/v1/plugin.grpc.pb.h"
#include "loophost/v1/transport.grpc.pb.h"
#include "loops/http/loopback_http_server.h"
#include "loops/http/refusing_port.h"
#include "loops/sdk/loop_server.h"

namespace loophost::loops::http {
namespace {

using ::loophost::testing::IsOk;
using ::loophost::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

v1::Delivery MakeDelivery(uint64_t id, const std::string& endpoint,
                          const std::string& body = "{}",
                          uint32_t timeout_ms = 0) {
  v1::Delivery d;
  d.set_delivery_id(id);
  d.set_subscription_id(absl::StrCat("sub-", id));
  d.set_endpoint(endpoint);
  d.set_body(body);
  d.set_content_type("application/json");
  d.set_timeout_ms(timeout_ms);
  return d;
}

v1::DeliveryBatch Batch(const std::vector<v1::Delivery>& deliveries) {
  v1::DeliveryBatch batch;
  for (const v1::Delivery& d : deliveries) *batch.add_deliveries() = d;
  return batch;
}

class HttpTransportLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = sdk::LoopServer::StartInProcess(
        MakeHttpTransportLoop(), {{"TRANSPORT_HOST", "http://localhost:9085"},
                                  {"HTTP_TRANSPORT_TIMEOUT", "5s"}});
    ASSERT_THAT(server, IsOk());
    server_ = std::move(*server);
    stub_ = v1::Transport::NewStub(server_->InProcessChannel());
  }
  void TearDown() override {
    stub_.reset();  // before the server stops (see LoopServer)
    server_.reset();
    // Only now: the transport has closed its keep-alive connections, which
    // cpp-httplib would otherwise wait out before its server stops.
    subscribers_.clear();
  }

  LoopbackHttpServer& Subscriber(int status) {
    subscribers_.push_back(std::make_unique<LoopbackHttpServer>(status));
    return *subscribers_.back();
  }

  std::unique_ptr<grpc::ClientContext> Context() {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    return context;
  }

  // Writes every delivery in one batch, half-closes, reads every result (in
  // the order they came) and the final status.
  std::vector<v1::DeliveryResult> DeliverAll(
      const std::vector<v1::Delivery>& deliveries,
      grpc::Status* status = nullptr) {
    auto context = Context();
    auto stream = stub_->Deliver(context.get());
    EXPECT_TRUE(stream->Write(Batch(deliveries)));
    EXPECT_TRUE(stream->WritesDone());
    std::vector<v1::DeliveryResult> results;
    v1::DeliveryResultBatch batch;
    while (stream->Read(&batch)) {
      results.insert(results.end(), batch.results().begin(),
                     batch.results().end());
    }
    grpc::Status st = stream->Finish();
    if (status != nullptr) *status = st;
    return results;
  }

  std::string Exposition() {
    return prometheus::TextSerializer().Serialize(server_->metrics().Collect());
  }

  std::unique_ptr<sdk::LoopServer> server_;
  std::unique_ptr<v1::Transport::Stub> stub_;
  std::vector<std::unique_ptr<LoopbackHttpServer>> subscribers_;
};

TEST_F(HttpTransportLoopTest, DescribesItselfAsATransport) {
  v1::DescribeResponse response;
  ASSERT_TRUE(v1::Plugin::NewStub(server_->InProcessChannel())
                  ->Describe(Context().get(), {}, &response)
                  .ok());
  EXPECT_EQ(response.name(), "http");
  EXPECT_THAT(response.kinds(), ElementsAre("transport"));
  EXPECT_THAT(server_->health().Report(), ElementsAre(Pair(kHealthCheck, "")));
}

TEST_F(HttpTransportLoopTest, ReportsOneResultPerDelivery) {
  LoopbackHttpServer& ok = Subscriber(204);
  LoopbackHttpServer& broken = Subscriber(500);
  LoopbackHttpServer& slow = Subscriber(204);
  slow.Hold();
  RefusingPort refused;
  grpc::Status status;
  const std::vector<v1::DeliveryResult> results =
      DeliverAll({MakeDelivery(1, ok.Url("/a")), MakeDelivery(2, broken.Url()),
                  MakeDelivery(3, refused.Url()), MakeDelivery(4, "ftp://x/"),
                  MakeDelivery(5, slow.Url(), "{}", /*timeout_ms=*/200)},
                 &status);
  EXPECT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(results.size(), 5u);
  std::map<uint64_t, v1::DeliveryResult> by_id;
  for (const auto& r : results) by_id[r.delivery_id()] = r;
  ASSERT_EQ(by_id.size(), 5u);

  EXPECT_TRUE(by_id[1].delivered());
  EXPECT_EQ(by_id[1].http_status(), 204);
  EXPECT_EQ(by_id[1].error(), "");
  EXPECT_GT(by_id[1].latency_us(), 0u);

  EXPECT_FALSE(by_id[2].delivered());
  EXPECT_EQ(by_id[2].http_status(), 500);
  EXPECT_EQ(by_id[2].error(), "HTTP 500");

  EXPECT_FALSE(by_id[3].delivered());
  EXPECT_EQ(by_id[3].http_status(), 0);
  EXPECT_THAT(by_id[3].error(), HasSubstr("refused"));

  EXPECT_FALSE(by_id[4].delivered());
  EXPECT_THAT(by_id[4].error(),
              HasSubstr("endpoint \"ftp://x/\": scheme \"ftp\" is not http"));

  EXPECT_FALSE(by_id[5].delivered());
  EXPECT_EQ(by_id[5].http_status(), 0);
  EXPECT_THAT(by_id[5].error(), HasSubstr("timed out"));
  EXPECT_GE(by_id[5].latency_us(), 200000u);
}

TEST_F(HttpTransportLoopTest, PostsTheBodyAsIs) {
  LoopbackHttpServer& subscriber = Subscriber(200);
  v1::CloudEvent event;
  event.set_id("e1");
  event.set_source("/cluster/node/n/sync/ptp-status/lock-state");
  event.set_type("event.sync.ptp-status.ptp-state-change");
  const std::string body = events::EncodeV2Event(event);
  const auto results = DeliverAll({MakeDelivery(7, subscriber.Url(), body)});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].delivered());
  ASSERT_EQ(subscriber.received().size(), 1u);
  EXPECT_EQ(subscriber.received()[0].body, body);
  EXPECT_EQ(subscriber.received()[0].content_type, "application/json");
}

TEST_F(HttpTransportLoopTest, AnswersInCompletionOrder) {
  LoopbackHttpServer& slow = Subscriber(204);
  slow.Hold();
  LoopbackHttpServer& fast = Subscriber(204);
  auto context = Context();
  auto stream = stub_->Deliver(context.get());
  ASSERT_TRUE(stream->Write(Batch({MakeDelivery(1, slow.Url())})));
  ASSERT_TRUE(slow.WaitForActive(1, absl::Seconds(20)));
  ASSERT_TRUE(stream->Write(Batch({MakeDelivery(2, fast.Url())})));
  v1::DeliveryResultBatch r;
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_EQ(r.results_size(), 1);
  EXPECT_EQ(r.results(0).delivery_id(), 2u);  // the slow one did not wait
  EXPECT_TRUE(r.results(0).delivered());
  slow.Release();
  ASSERT_TRUE(stream->Read(&r));
  ASSERT_EQ(r.results_size(), 1);
  EXPECT_EQ(r.results(0).delivery_id(), 1u);
  EXPECT_TRUE(r.results(0).delivered());
  ASSERT_TRUE(stream->WritesDone());
  EXPECT_FALSE(stream->Read(&r));
  EXPECT_TRUE(stream->Finish().ok());
}

// Deliveries 1..n of one subscription, all but the first after_previous.
std::vector<v1::Delivery> Lane(const std::string& endpoint, int n) {
  std::vector<v1::Delivery> out;
  for (int i = 1; i <= n; ++i) {
    v1::Delivery d = MakeDelivery(i, endpoint, absl::StrCat("{\"n\":", i, "}"));
    d.set_subscription_id("sub-a");
    d.set_after_previous(i > 1);
    out.push_back(d);
  }
  return out;
}

TEST_F(HttpTransportLoopTest, PostsASubscriptionsDeliveriesOneAfterAnother) {
  LoopbackHttpServer& subscriber = Subscriber(204);
  subscriber.Hold();
  auto context = Context();
  auto stream = stub_->Deliver(context.get());
  ASSERT_TRUE(stream->Write(Batch(Lane(subscriber.Url(), 4))));
  ASSERT_TRUE(subscriber.WaitForActive(1, absl::Seconds(20)));
  // The others wait behind the first: nothing else reaches the subscriber.
  EXPECT_EQ(subscriber.received().size(), 1u);
  subscriber.Release();
  std::vector<uint64_t> ids;
  v1::DeliveryResultBatch r;
  while (ids.size() < 4 && stream->Read(&r)) {
    for (const v1::DeliveryResult& result : r.results()) {
      EXPECT_TRUE(result.delivered()) << result.error();
      ids.push_back(result.delivery_id());
    }
  }
  EXPECT_THAT(ids, ElementsAre(1u, 2u, 3u, 4u));
  std::vector<std::string> bodies;
  for (const auto& req : subscriber.received()) bodies.push_back(req.body);
  EXPECT_THAT(bodies,
              ElementsAre("{\"n\":1}", "{\"n\":2}", "{\"n\":3}", "{\"n\":4}"));
  ASSERT_TRUE(stream->WritesDone());
  EXPECT_FALSE(stream->Read(&r));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(HttpTransportLoopTest, AFailureSkipsTheDeliveriesBehindIt) {
  LoopbackHttpServer& subscriber = Subscriber(503);
  auto context = Context();
  auto stream = stub_->Deliver(context.get());
  ASSERT_TRUE(stream->Write(Batch(Lane(subscriber.Url(), 3))));
  std::map<uint64_t, v1::DeliveryResult> results;
  v1::DeliveryResultBatch r;
  while (results.size() < 3 && stream->Read(&r)) {
    for (const v1::DeliveryResult& result : r.results()) {
      results[result.delivery_id()] = result;
    }
  }
  ASSERT_EQ(results.size(), 3u);
  EXPECT_FALSE(results[1].delivered());
  EXPECT_FALSE(results[1].skipped());
  EXPECT_EQ(results[1].http_status(), 503);
  for (uint64_t id : {2u, 3u}) {
    EXPECT_TRUE(results[id].skipped()) << id;
    EXPECT_FALSE(results[id].delivered()) << id;
  }
  EXPECT_EQ(subscriber.received().size(), 1u);  // only the first was posted

  // More after_previous deliveries are skipped too, until the host starts
  // the subscription afresh (the retry of the first, not after_previous).
  subscriber.set_status(204);
  std::vector<v1::Delivery> more = Lane(subscriber.Url(), 2);
  more[0].set_delivery_id(4);
  more[0].set_after_previous(true);
  more[1].set_delivery_id(5);
  ASSERT_TRUE(stream->Write(Batch(more)));
  std::vector<v1::Delivery> retry = Lane(subscriber.Url(), 1);
  retry[0].set_delivery_id(6);
  ASSERT_TRUE(stream->Write(Batch(retry)));
  while (results.size() < 6 && stream->Read(&r)) {
    for (const v1::DeliveryResult& result : r.results()) {
      results[result.delivery_id()] = result;
    }
  }
  EXPECT_TRUE(results[4].skipped());
  EXPECT_TRUE(results[5].skipped());
  EXPECT_TRUE(results[6].delivered());
  EXPECT_EQ(subscriber.received().size(), 2u);
  ASSERT_TRUE(stream->WritesDone());
  EXPECT_FALSE(stream->Read(&r));
  EXPECT_TRUE(stream->Finish().ok());
}

TEST_F(HttpTransportLoopTest, ACancelledStreamLeavesTheLoopServing) {
  LoopbackHttpServer& slow = Subscriber(204);
  slow.Hold();
  {
    auto context = Context();
    auto stream = stub_->Deliver(context.get());
    ASSERT_TRUE(stream->Write(Batch({MakeDelivery(1, slow.Url())})));
    ASSERT_TRUE(slow.WaitForActive(1, absl::Seconds(20)));
    context->TryCancel();
    v1::DeliveryResultBatch r;
    EXPECT_FALSE(stream->Read(&r));
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  slow.Release();  // the orphaned result is dropped
  LoopbackHttpServer& ok = Subscriber(204);
  const auto results = DeliverAll({MakeDelivery(2, ok.Url())});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].delivered());
}

TEST_F(HttpTransportLoopTest, CheckEndpoint) {
  LoopbackHttpServer& ok = Subscriber(204);
  LoopbackHttpServer& not_found = Subscriber(404);
  RefusingPort refused;
  struct Case {
    std::string endpoint;
    int want_status;
    std::string want_error;
  };
  for (const Case& c :
       {Case{ok.Url("/check"), 204, ""}, Case{not_found.Url(), 404, "HTTP 404"},
        Case{refused.Url(), 0, "refused"},
        Case{"amqp://broker", 0, "scheme \"amqp\" is not http or https"}}) {
    v1::CheckEndpointRequest request;
    request.set_endpoint(c.endpoint);
    request.set_timeout_ms(2000);
    v1::CheckEndpointResponse response;
    grpc::Status st = stub_->CheckEndpoint(Context().get(), request, &response);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(response.http_status(), c.want_status) << c.endpoint;
    if (c.want_error.empty()) {
      EXPECT_EQ(response.error(), "") << c.endpoint;
    } else {
      EXPECT_THAT(response.error(), HasSubstr(c.want_error)) << c.endpoint;
    }
  }
  // An empty POST, as v1's subscription check sends.
  ASSERT_EQ(ok.received().size(), 1u);
  EXPECT_EQ(ok.received()[0].body, "");
  EXPECT_EQ(ok.received()[0].path, "/check");
}

TEST_F(HttpTransportLoopTest, CountsInTheSeedsMetrics) {
  LoopbackHttpServer& ok = Subscriber(204);
  LoopbackHttpServer& broken = Subscriber(503);
  RefusingPort refused;
  // One after the other to `ok` (as the host sends to one subscriber), so
  // that the second reuses the first one's connection.
  DeliverAll({MakeDelivery(1, ok.Url())});
  DeliverAll({MakeDelivery(2, ok.Url()), MakeDelivery(3, broken.Url()),
              MakeDelivery(4, refused.Url())});
  const std::string text = Exposition();
  const std::string okl = absl::StrCat("address=\"", ok.Url(), "\"");
  const std::string brokenl = absl::StrCat("address=\"", broken.Url(), "\"");
  const std::string refusedl = absl::StrCat("address=\"", refused.Url(), "\"");
  EXPECT_THAT(text, HasSubstr(absl::StrCat("cne_transport_events_published{",
                                           okl, ",status=\"success\"} 2")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("cne_transport_events_published{",
                                           brokenl, ",status=\"failed\"} 1")));
  EXPECT_THAT(
      text, HasSubstr(absl::StrCat("cne_transport_events_published{", refusedl,
                                   ",status=\"connection reset\"} 1")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("cne_transport_sender{", okl,
                                           ",status=\"active\"} 1")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("cne_transport_sender{", brokenl,
                                           ",status=\"failed\"} 1")));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("cne_transport_sender{", brokenl,
                                           ",status=\"active\"} 0")));
  EXPECT_THAT(text, HasSubstr("loop_http_request_duration_seconds_count 4"));
  EXPECT_THAT(text, HasSubstr("loop_http_connections_opened_total 2"));
  EXPECT_THAT(text, HasSubstr("loop_http_deliveries_pending 0"));
}

TEST(HttpTransportConfigTest, Defaults) {
  auto config = ParseHttpTransportConfig({});
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->transport_host, "http://localhost:9085");
  EXPECT_EQ(config->sender.default_timeout, absl::Seconds(2));
  EXPECT_EQ(config->sender.max_in_flight, 256);
}

TEST(HttpTransportConfigTest, FromEnvironment) {
  auto config = ParseHttpTransportConfig(
      {{"TRANSPORT_HOST", "https://events.example.com:9043"},
       {"HTTP_TRANSPORT_TIMEOUT", "750ms"},
       {"HTTP_TRANSPORT_MAX_IN_FLIGHT", "8"},
       {"HTTP_TRANSPORT_MAX_HOST_CONNECTIONS", "4"},
       {"HTTP_TRANSPORT_MAX_IDLE_CONNECTIONS", "16"},
       {"HTTP_TRANSPORT_CA_FILE", "/etc/loophost/subscribers-ca.pem"}});
  ASSERT_THAT(config, IsOk());
  EXPECT_EQ(config->sender.ca_file, "/etc/loophost/subscribers-ca.pem");
  EXPECT_EQ(config->transport_host, "https://events.example.com:9043");
  EXPECT_EQ(config->sender.default_timeout, absl::Milliseconds(750));
  EXPECT_EQ(config->sender.max_in_flight, 8);
  EXPECT_EQ(config->sender.max_host_connections, 4);
  EXPECT_EQ(config->sender.max_idle_connections, 16);
}

TEST(HttpTransportConfigTest, ErrorsNameTheVariable) {
  struct Case {
    sdk::LoopEnv env;
    std::string want;
  };
  const std::vector<Case> cases = {
      {{{"TRANSPORT_HOST", "amqp://localhost:5672"}},
       "TRANSPORT_HOST=amqp://localhost:5672: scheme \"amqp\" is not http or "
       "https"},
      {{{"TRANSPORT_HOST", "localhost"}}, "TRANSPORT_HOST=localhost: "},
      {{{"HTTP_TRANSPORT_TIMEOUT", "soon"}}, "HTTP_TRANSPORT_TIMEOUT=soon"},
      {{{"HTTP_TRANSPORT_MAX_IN_FLIGHT", "0"}},
       "HTTP_TRANSPORT_MAX_IN_FLIGHT=0"},
      {{{"HTTP_TRANSPORT_MAX_IN_FLIGHT", "many"}},
       "HTTP_TRANSPORT_MAX_IN_FLIGHT=many"},
  };
  for (const Case& c : cases) {
    EXPECT_THAT(ParseHttpTransportConfig(c.env),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.want)))
        << c.want;
  }
}

TEST(HttpTransportLoopStartTest, ABadSchemeFailsTheStart) {
  auto server = sdk::LoopServer::StartInProcess(
      MakeHttpTransportLoop(), {{"TRANSPORT_HOST", "amqp://localhost:5672"}});
  EXPECT_THAT(server,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("TRANSPORT_HOST=amqp://localhost:5672")));
}

TEST(HttpTransportLoopStartTest, AnUnreadableCaFileFailsTheStart) {
  auto server = sdk::LoopServer::StartInProcess(
      MakeHttpTransportLoop(),
      {{"HTTP_TRANSPORT_CA_FILE", "/nonexistent/subscribers-ca.pem"}});
  EXPECT_THAT(server, StatusIs(absl::StatusCode::kInvalidArgument,
                               HasSubstr("/nonexistent/subscribers-ca.pem")));
}

}  // namespace
}  // namespace loophost::loops::http
