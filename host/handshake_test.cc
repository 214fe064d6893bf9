// Tests for the go-plugin handshake: parsing (table) and HandshakeWaiter with
// fed lines and with real children for exit and timeout.
#include "host/handshake.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "host/child_process_control.h"
#include "host/process_launcher.h"
#include "host/process_test_util.h"

namespace loophost::host {
namespace {

using ::loophost::testing::StatusIs;
using ::testing::HasSubstr;

struct ParseCase {
  std::string name;
  std::string line;
  absl::StatusCode code;
  std::string error;  // substring of the message when code != kOk
  Handshake want;
};

void PrintTo(const ParseCase& c, std::ostream* os) { *os << c.name; }

class ParseHandshakeTest : public ::testing::TestWithParam<ParseCase> {};

TEST_P(ParseHandshakeTest, Parses) {
  const ParseCase& c = GetParam();
  absl::StatusOr<Handshake> got = ParseHandshakeLine(c.line);
  if (c.code != absl::StatusCode::kOk) {
    EXPECT_THAT(got, StatusIs(c.code, HasSubstr(c.error)));
    return;
  }
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->core_version, c.want.core_version);
  EXPECT_EQ(got->app_version, c.want.app_version);
  EXPECT_EQ(got->network, c.want.network);
  EXPECT_EQ(got->address, c.want.address);
  EXPECT_EQ(got->protocol, c.want.protocol);
  EXPECT_EQ(got->cert, c.want.cert);
  EXPECT_EQ(got->multiplex, c.want.multiplex);
}

constexpr absl::StatusCode kOk = absl::StatusCode::kOk;
constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;

INSTANTIATE_TEST_SUITE_P(
    Table, ParseHandshakeTest,
    ::testing::Values(
        ParseCase{"Unix",
                  "1|1|unix|/tmp/plugin123/sock|grpc|",
                  kOk,
                  "",
                  {1, 1, "unix", "/tmp/plugin123/sock", "grpc", "", false}},
        ParseCase{"TrailingNewline",
                  "1|1|unix|/tmp/s|grpc|\r\n",
                  kOk,
                  "",
                  {1, 1, "unix", "/tmp/s", "grpc", "", false}},
        ParseCase{"Tcp",
                  "1|1|tcp|127.0.0.1:41234|grpc|",
                  kOk,
                  "",
                  {1, 1, "tcp", "127.0.0.1:41234", "grpc", "", false}},
        ParseCase{"MuxAndCert",
                  "1|1|unix|/tmp/s|grpc|MIIBcert|true",
                  kOk,
                  "",
                  {1, 1, "unix", "/tmp/s", "grpc", "MIIBcert", true}},
        ParseCase{"MuxFalse",
                  "1|1|unix|/tmp/s|grpc||false",
                  kOk,
                  "",
                  {1, 1, "unix", "/tmp/s", "grpc", "", false}},
        ParseCase{"OldFiveFields",
                  "1|1|unix|/tmp/s|grpc",
                  kOk,
                  "",
                  {1, 1, "unix", "/tmp/s", "grpc", "", false}},
        ParseCase{"TooFewFields",
                  "1|1|unix|/tmp/s",
                  kInvalid,
                  "handshake has 4 fields",
                  {}},
        ParseCase{"TooManyFields",
                  "1|1|unix|/tmp/s|grpc||true|x",
                  kInvalid,
                  "handshake has 8 fields",
                  {}},
        ParseCase{
            "Junk", "hello world", kInvalid, "handshake has 1 fields", {}},
        ParseCase{"CoreVersion",
                  "2|1|unix|/tmp/s|grpc|",
                  kInvalid,
                  "unsupported core protocol version 2, host speaks 1",
                  {}},
        ParseCase{"CoreNotNumber",
                  "x|1|unix|/tmp/s|grpc|",
                  kInvalid,
                  "core protocol version \"x\" is not a number",
                  {}},
        ParseCase{"AppVersionMismatch",
                  "1|2|unix|/tmp/s|grpc|",
                  kInvalid,
                  "version mismatch: plugin speaks app protocol 2, host 1",
                  {}},
        ParseCase{"AppNotNumber",
                  "1|v1|unix|/tmp/s|grpc|",
                  kInvalid,
                  "app protocol version \"v1\" is not a number",
                  {}},
        ParseCase{"Netrpc",
                  "1|1|unix|/tmp/s|netrpc|",
                  kInvalid,
                  "netrpc plugins are not supported",
                  {}},
        ParseCase{"OtherProtocol",
                  "1|1|unix|/tmp/s|http|",
                  kInvalid,
                  "protocol \"http\" is not supported (want grpc)",
                  {}},
        ParseCase{"Udp",
                  "1|1|udp|1.2.3.4:5|grpc|",
                  kInvalid,
                  "network \"udp\" is not supported (want unix or tcp)",
                  {}},
        ParseCase{
            "EmptyAddress", "1|1|unix||grpc|", kInvalid, "empty address", {}}),
    [](const ::testing::TestParamInfo<ParseCase>& param) {
      return param.param.name;
    });

constexpr char kGood[] = "1|1|unix|/tmp/p/plugin.sock|grpc|";

TEST(HandshakeWaiterTest, JunkLinesThenHandshake) {
  HandshakeWaiter waiter("ptp");
  waiter.OnStdoutLine("starting up");
  waiter.OnStdoutLine("");
  waiter.OnStdoutLine("{\"@message\":\"json log on stdout\"}");
  waiter.OnStdoutLine(kGood);
  absl::StatusOr<Handshake> got = waiter.Wait(-1, absl::Seconds(5));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->address, "/tmp/p/plugin.sock");
  waiter.OnStdoutLine("after the handshake: re-logged");
  EXPECT_TRUE(waiter.Wait(-1, absl::Seconds(5)).ok());  // settled for good
}

TEST(HandshakeWaiterTest, HandshakeFromAnotherThreadWakesTheWaiter) {
  HandshakeWaiter waiter("ptp");
  std::thread relay([&waiter] { waiter.OnStdoutLine(kGood); });
  absl::StatusOr<Handshake> got = waiter.Wait(-1, absl::Seconds(10));
  relay.join();
  EXPECT_TRUE(got.ok()) << got.status();
}

TEST(HandshakeWaiterTest, TooManyLinesBeforeHandshake) {
  HandshakeWaiter waiter("ptp");
  for (int i = 0; i < HandshakeWaiter::kMaxLinesBeforeHandshake; ++i) {
    waiter.OnStdoutLine("noise");
  }
  waiter.OnStdoutLine("one too many");
  waiter.OnStdoutLine(kGood);  // too late
  EXPECT_THAT(waiter.Wait(-1, absl::Seconds(5)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no handshake in the first 101 lines")));
}

TEST(HandshakeWaiterTest, TooManyBytesBeforeHandshake) {
  HandshakeWaiter waiter("ptp");
  const std::string big(size_t{16} * 1024, 'x');
  for (int i = 0; i < 4; ++i) waiter.OnStdoutLine(big);
  EXPECT_THAT(waiter.Wait(-1, absl::Seconds(5)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no handshake in the first 4 lines")));
}

TEST(HandshakeWaiterTest, MalformedHandshakeFails) {
  HandshakeWaiter waiter("ptp");
  waiter.OnStdoutLine("1|2|unix|/tmp/s|grpc|");
  EXPECT_THAT(
      waiter.Wait(-1, absl::Seconds(5)),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "version mismatch: plugin speaks app protocol 2, host 1"));
}

TEST(HandshakeWaiterTest, ChildExitsBeforeHandshake) {
  PosixProcessLauncher launcher;
  auto child = launcher.Spawn(testing::Shell("exit 3"));
  ASSERT_TRUE(child.ok()) << child.status();
  HandshakeWaiter waiter("ptp");
  waiter.OnStdoutLine("some noise");
  EXPECT_THAT(waiter.Wait(child->pidfd.get(), absl::Seconds(10)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "exited before the handshake (exited with code 3; 1 "
                       "other lines on stdout)"));
  // Not reaped by the waiter: the caller still gets the exit status.
  EXPECT_EQ(ReapChild(*child), "exited with code 3");
}

TEST(HandshakeWaiterTest, TimeoutMessageIsRounded) {
  HandshakeWaiter waiter("ptp");
  EXPECT_THAT(
      waiter.Wait(-1, absl::Milliseconds(1049)),
      StatusIs(absl::StatusCode::kDeadlineExceeded, "no handshake within 1s"));
}

TEST(HandshakeWaiterTest, TimesOut) {
  PosixProcessLauncher launcher;
  auto child = launcher.Spawn({"/bin/sleep", {"sleep", "30"}, {}});
  ASSERT_TRUE(child.ok()) << child.status();
  HandshakeWaiter waiter("ptp");
  EXPECT_THAT(waiter.Wait(child->pidfd.get(), absl::Milliseconds(300)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       "no handshake within 300ms"));
  EXPECT_EQ(TerminateChild(*child, absl::Seconds(5)),
            "killed by signal 15 (Terminated)");
}

}  // namespace
}  // namespace loophost::host
