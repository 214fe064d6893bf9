// Tests for plugin log parsing (table) and re-logging through the host logger.
#include "host/plugin_log.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

namespace loophost::host {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct LogCase {
  std::string name;
  std::string line;
  PluginLogLine want;
};

void PrintTo(const LogCase& c, std::ostream* os) { *os << c.name; }

class ParsePluginLogLineTest : public ::testing::TestWithParam<LogCase> {};

TEST_P(ParsePluginLogLineTest, Parses) {
  const LogCase& c = GetParam();
  PluginLogLine got = ParsePluginLogLine(c.line);
  EXPECT_EQ(LogLevelName(got.level), LogLevelName(c.want.level));
  EXPECT_EQ(got.message, c.want.message);
  EXPECT_EQ(got.fields, c.want.fields);
}

using L = LogLevel;

INSTANTIATE_TEST_SUITE_P(
    Table, ParsePluginLogLineTest,
    ::testing::Values(
        LogCase{"HclogJson",
                R"({"@level":"debug","@message":"polling","@timestamp":)"
                R"("2024-05-01T10:00:00.000000Z","@module":"ptp","port":3,)"
                R"("iface":"eth0"})",
                {L::kDebug,
                 "polling",
                 {{"module", "ptp"}, {"iface", "eth0"}, {"port", "3"}}}},
        LogCase{"HclogJsonWarnNested",
                R"({"@level":"warn","@message":"x","obj":{"a":[1,true]}})",
                {L::kWarn, "x", {{"obj", R"({"a":[1,true]})"}}}},
        LogCase{"HclogJsonError",
                R"({"@level":"error","@message":"boom","error":"eof"})",
                {L::kError, "boom", {{"error", "eof"}}}},
        LogCase{"HclogJsonUnknownLevel",
                R"({"@level":"loud","@message":"m"})",
                {L::kInfo, "m", {}}},
        LogCase{"HclogJsonHostKeysRenamed",
                R"({"@level":"info","@message":"m","plugin":"fake"})",
                {L::kInfo, "m", {{"log.plugin", "fake"}}}},
        LogCase{
            "JsonWithoutHclogKeys", R"({"a":1})", {L::kInfo, R"({"a":1})", {}}},
        LogCase{"BrokenJson",
                R"({"@level":"info",)",
                {L::kInfo, R"({"@level":"info",)", {}}},
        LogCase{"BracketLevel",
                "[WARN]  disk almost full",
                {L::kWarn, "disk almost full", {}}},
        LogCase{"BracketErr",
                "[ERR] old logutils style",
                {L::kError, "old logutils style", {}}},
        LogCase{"HclogText",
                "2024-05-01T10:00:00.000Z [DEBUG] ptp: offset: value=12",
                {L::kDebug, "ptp: offset: value=12", {}}},
        LogCase{"ColonLevel",
                "ERROR: cannot open /dev/ptp0",
                {L::kError, "cannot open /dev/ptp0", {}}},
        LogCase{
            "PythonStyle", "WARNING:root:slow", {L::kWarn, "root:slow", {}}},
        LogCase{"LowercaseColon", "info: ready", {L::kInfo, "ready", {}}},
        LogCase{
            "Fatal", "FATAL: out of memory", {L::kError, "out of memory", {}}},
        LogCase{"NotALevelColon",
                "Listening: 127.0.0.1:80",
                {L::kInfo, "Listening: 127.0.0.1:80", {}}},
        LogCase{"NotALevelBracket",
                "[main] started",
                {L::kInfo, "[main] started", {}}},
        LogCase{"Plain", "  just text \r", {L::kInfo, "just text", {}}},
        LogCase{"TimestampButNoLevel",
                "2024-05-01 started",
                {L::kInfo, "2024-05-01 started", {}}},
        LogCase{"Empty", "", {L::kInfo, "", {}}}),
    [](const ::testing::TestParamInfo<LogCase>& param) {
      return param.param.name;
    });

// Captures what the logger writes to stderr while `fn` runs.
template <typename Fn>
std::string CaptureStderr(Fn fn) {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  int saved = ::dup(STDERR_FILENO);
  ::dup2(fds[1], STDERR_FILENO);
  fn();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  return out;
}

TEST(RelogPluginLineTest, TagsPluginAndStdout) {
  std::string out = CaptureStderr([] {
    RelogPluginLine("ptp", "stdout",
                    R"({"@level":"warn","@message":"late","ms":"12"})");
  });
  EXPECT_THAT(out, HasSubstr(" WARN  late plugin=ptp stream=stdout ms=12\n"));
}

TEST(RelogPluginLineTest, StderrHasNoStreamField) {
  std::string out = CaptureStderr(
      [] { RelogPluginLine("http", "stderr", "[ERROR] dial failed"); });
  EXPECT_THAT(out, HasSubstr(" ERROR dial failed plugin=http\n"));
  EXPECT_THAT(out, Not(HasSubstr("stream=")));
}

TEST(RelogPluginLineTest, DropsEmptyLines) {
  EXPECT_EQ(CaptureStderr([] { RelogPluginLine("ptp", "stderr", "  "); }), "");
}

}  // namespace
}  // namespace loophost::host
