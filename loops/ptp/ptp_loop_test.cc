// PtpLoop served in-process, as loophost runs it: Describe, health checks,
// publishers, events streamed as log lines arrive on the socket, AckEvents,
// CurrentState, and a restart that keeps unacknowledged events, the
// sequence numbers and the state.
#include "loops/ptp/ptp_loop.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "common/unique_fd.h"
#include "loophost/v1/event_source.grpc.pb.h"
#include "loophost/v1/plugin.grpc.pb.h"
#include "loops/sdk/loop_server.h"
#include "tests/testing/child_process.h"

namespace loophost::loops::ptp {
namespace {

using ::loophost::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kData = LH_PTP_TEST_DATA;

class PtpLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/lh-ptploop-XXXXXX");
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    Start();
  }
  void TearDown() override {
    Stop();
    std::filesystem::remove_all(dir_);
  }

  void Start() {
    sdk::LoopEnv env{{"NODE_NAME", "node-a"},
                     {"PTP_LOG_SOCKET", dir_ + "/events.sock"},
                     {"LOOP_STATE_DIR", dir_ + "/state"},
                     {"PTP_THRESHOLD_MAX_OFFSET_NS", "3000"},
                     {"PTP_THRESHOLD_MIN_OFFSET_NS", "-3000"},
                     {"PTP_HOLDOVER_TIMEOUT_S", "5"}};
    auto server = sdk::LoopServer::StartInProcess(MakePtpLoop(), env);
    ASSERT_THAT(server, IsOk());
    server_ = std::move(*server);
    stub_ = v1::EventSource::NewStub(server_->InProcessChannel());
  }
  void Stop() {
    stub_.reset();
    server_.reset();
  }

  std::unique_ptr<grpc::ClientContext> Context(
      absl::Duration timeout = absl::Seconds(10)) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    return context;
  }

  void WriteLines(const std::vector<std::string>& lines) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s",
                  (dir_ + "/events.sock").c_str());
    ASSERT_EQ(
        ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
        0);
    std::string data;
    for (const std::string& l : lines) absl::StrAppend(&data, l, "\n");
    ASSERT_EQ(::write(fd.get(), data.data(), data.size()),
              static_cast<ssize_t>(data.size()));
  }

  // Reads `n` events from a stream after `after`: "seq type=value".
  std::vector<std::string> Read(uint64_t after, size_t n) {
    auto context = Context();
    v1::StreamEventsRequest request;
    request.set_after_sequence(after);
    auto reader = stub_->StreamEvents(context.get(), request);
    std::vector<std::string> out;
    v1::SequencedEvent e;
    while (out.size() < n && reader->Read(&e)) {
      out.push_back(absl::StrCat(e.sequence(), " ", e.event().type(), "=",
                                 e.event().data().values(0).value()));
    }
    context->TryCancel();
    return out;
  }

  std::string dir_;
  std::unique_ptr<sdk::LoopServer> server_;
  std::unique_ptr<v1::EventSource::Stub> stub_;
};

constexpr char kLock[] = "event.sync.ptp-status.ptp-state-change";
constexpr char kSync[] = "event.sync.sync-status.synchronization-state-change";

TEST_F(PtpLoopTest, DescribesItselfAsAnEventSourceWithHealthyChecks) {
  v1::DescribeResponse describe;
  ASSERT_TRUE(v1::Plugin::NewStub(server_->InProcessChannel())
                  ->Describe(Context().get(), {}, &describe)
                  .ok());
  EXPECT_EQ(describe.name(), "ptp");
  EXPECT_THAT(describe.kinds(), ElementsAre("event_source"));
  ASSERT_TRUE(::loophost::testing::WaitFor(
      [&] { return server_->health().Report().at("ptp.input").empty(); },
      absl::Seconds(10), "ptp.input healthy"));
  auto report = server_->health().Report();
  EXPECT_EQ(report.at("ptp.state"), "");
  EXPECT_EQ(report.at("ptp.events"), "");
}

TEST_F(PtpLoopTest, ListsItsFourPublishers) {
  v1::ListPublishersResponse response;
  ASSERT_TRUE(stub_->ListPublishers(Context().get(), {}, &response).ok());
  std::vector<std::string> got;
  for (const auto& p : response.publishers())
    got.push_back(absl::StrCat(p.resource_address(), " ", p.event_type()));
  EXPECT_THAT(
      got,
      ElementsAre("/cluster/node/node-a/sync/ptp-status/lock-state "
                  "event.sync.ptp-status.ptp-state-change",
                  "/cluster/node/node-a/sync/sync-status/os-clock-sync-state "
                  "event.sync.sync-status.os-clock-sync-state-change",
                  "/cluster/node/node-a/sync/ptp-status/clock-class "
                  "event.sync.ptp-status.ptp-clock-class-change",
                  "/cluster/node/node-a/sync/sync-status/sync-state "
                  "event.sync.sync-status.synchronization-state-change"));
}

TEST_F(PtpLoopTest, StreamsEventsAcksThemAndKeepsTheRestAcrossARestart) {
  WriteLines(
      {"ptp4l[1866.393]: master offset -620 s0 freq +104 path delay "
       "2763",
       "ptp4l[1883.395]: master offset -249 s2 freq +51 path delay "
       "2533"});
  EXPECT_THAT(Read(0, 4), ElementsAre(absl::StrCat("1 ", kLock, "=FREERUN"),
                                      absl::StrCat("2 ", kSync, "=FREERUN"),
                                      absl::StrCat("3 ", kLock, "=LOCKED"),
                                      absl::StrCat("4 ", kSync, "=LOCKED")));
  // Live: a stream that is waiting gets the next event as it happens.
  {
    auto context = Context();
    v1::StreamEventsRequest request;
    request.set_after_sequence(4);
    auto reader = stub_->StreamEvents(context.get(), request);
    WriteLines({"ptp4l[1884.000]:[ptp4l.0.config] CLOCK_CLASS_CHANGE 248"});
    v1::SequencedEvent e;
    ASSERT_TRUE(reader->Read(&e));
    EXPECT_EQ(e.sequence(), 5u);
    EXPECT_EQ(e.event().type(), "event.sync.ptp-status.ptp-clock-class-change");
    EXPECT_EQ(e.event().data().values(0).value(), "248");
    context->TryCancel();
  }
  v1::AckEventsRequest ack;
  ack.set_up_to_sequence(3);
  v1::AckEventsResponse ack_response;
  ASSERT_TRUE(stub_->AckEvents(Context().get(), ack, &ack_response).ok());
  EXPECT_THAT(Read(0, 2), ElementsAre(absl::StrCat("4 ", kSync, "=LOCKED"),
                                      "5 event.sync.ptp-status.ptp-clock-"
                                      "class-change=248"));

  // A restart (plugin or host): what was not acknowledged is still there,
  // the state too (the same reading is no new edge), and numbers go on.
  Stop();
  Start();
  EXPECT_THAT(Read(3, 2), ElementsAre(absl::StrCat("4 ", kSync, "=LOCKED"),
                                      "5 event.sync.ptp-status.ptp-clock-"
                                      "class-change=248"));
  v1::CurrentStateRequest request;
  request.set_resource_address(
      "/cluster/node/node-a/sync/ptp-status/lock-state");
  v1::CurrentStateResponse state;
  ASSERT_TRUE(stub_->CurrentState(Context().get(), request, &state).ok());
  EXPECT_EQ(state.event().data().values(0).value(), "LOCKED");
  EXPECT_EQ(state.event().data().values(1).value(), "-249.000");
  ASSERT_TRUE(::loophost::testing::WaitFor(
      [&] { return server_->health().Report().at("ptp.input").empty(); },
      absl::Seconds(10), "ptp.input healthy"));
  WriteLines(
      {"ptp4l[1885.395]: master offset -48 s2 freq +69 path delay "
       "2431",
       "ptp4l[1886.000]: master offset 999999 s2 freq +69 path delay "
       "2431"});
  EXPECT_THAT(Read(5, 2), ElementsAre(absl::StrCat("6 ", kLock, "=FREERUN"),
                                      absl::StrCat("7 ", kSync, "=FREERUN")));
}

TEST_F(PtpLoopTest, HoldoverTimesOutOnTheRealClock) {
  Stop();
  {
    // A 1 s holdover so the test does not wait long; the timer is the input
    // thread's epoll timeout.
    sdk::LoopEnv env{{"NODE_NAME", "node-a"},
                     {"PTP_LOG_SOCKET", dir_ + "/events.sock"},
                     {"PTP_THRESHOLD_MAX_OFFSET_NS", "3000"},
                     {"PTP_THRESHOLD_MIN_OFFSET_NS", "-3000"},
                     {"PTP_HOLDOVER_TIMEOUT_S", "1"}};
    auto server = sdk::LoopServer::StartInProcess(MakePtpLoop(), env);
    ASSERT_THAT(server, IsOk());
    server_ = std::move(*server);
    stub_ = v1::EventSource::NewStub(server_->InProcessChannel());
  }
  WriteLines(
      {"ptp4l[1883.395]: port 1: UNCALIBRATED to SLAVE on "
       "MASTER_CLOCK_SELECTED",
       "ptp4l[1883.395]: master offset -249 s2 freq +51 path delay "
       "2533",
       "ptp4l[1902.732]: port 1: SLAVE to MASTER on "
       "ANNOUNCE_RECEIPT_TIMEOUT_EXPIRES"});
  absl::Time start = absl::Now();
  EXPECT_THAT(Read(0, 6), ElementsAre(absl::StrCat("1 ", kLock, "=LOCKED"),
                                      absl::StrCat("2 ", kSync, "=LOCKED"),
                                      absl::StrCat("3 ", kLock, "=HOLDOVER"),
                                      absl::StrCat("4 ", kSync, "=HOLDOVER"),
                                      absl::StrCat("5 ", kLock, "=FREERUN"),
                                      absl::StrCat("6 ", kSync, "=FREERUN")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(PtpLoopTest, MetricsAreInTheLoopsRegistry) {
  std::ifstream in(kData + "/B-backup-master/slave.log");
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  WriteLines(lines);
  // Live, the whole log arrives at once: the holdover (5 s of real time) is
  // ended by the next LOCKED offset, so 8 events, not --replay's 10.
  ASSERT_EQ(Read(0, 8).size(), 8u);
  std::string text;
  ASSERT_TRUE(::loophost::testing::WaitFor(
      [&] {
        text = prometheus::TextSerializer().Serialize(
            server_->metrics().Collect());
        return text.find("loop_ptp_lines_total{kind=\"offset\"} 64") !=
               std::string::npos;
      },
      absl::Seconds(10), "every offset line processed"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_offset_ns{from=\"master\",iface="
                              "\"master\",node=\"node-a\",process=\"ptp4l\"} "
                              "233"));
  EXPECT_THAT(text, HasSubstr("openshift_ptp_clock_state{iface=\"master\","
                              "node=\"node-a\",process=\"ptp4l\"} 1"));
  EXPECT_THAT(text, HasSubstr("loop_ptp_held_events 8"));
}

TEST(PtpLoopConfig, BadValueFailsTheStartNamingTheVariable) {
  auto server = sdk::LoopServer::StartInProcess(
      MakePtpLoop(), {{"PTP_THRESHOLD_MAX_OFFSET_NS", "lots"}});
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(),
              HasSubstr("PTP_THRESHOLD_MAX_OFFSET_NS=lots: not an integer"));
}

}  // namespace
}  // namespace loophost::loops::ptp
