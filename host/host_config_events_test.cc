// ParseHostConfig's event framework settings: LOOPHOST_API_ADDR,
// TRANSPORT_HOST (scheme -> transport plugin, host:port -> external base),
// dedup, retention, removal and backoff; bad values are one line naming the
// variable.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "host/host_config.h"

namespace loophost::host {
namespace {

using ::loophost::testing::IsOk;
using ::loophost::testing::StatusIs;
using ::testing::HasSubstr;

constexpr const char* kVariables[] = {"LOOPHOST_API_ADDR",
                                      "TRANSPORT_HOST",
                                      "LOOPHOST_DEDUP_WINDOW",
                                      "LOOPHOST_RETENTION_MAX_AGE",
                                      "LOOPHOST_RETENTION_MAX_EVENTS",
                                      "LOOPHOST_REMOVE_AFTER_FAILURES",
                                      "LOOPHOST_DELIVERY_BACKOFF_MAX"};

// CLI11 reads the variables from the process environment.
class HostConfigEventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kVariables) ::unsetenv(v);
  }
  void TearDown() override { SetUp(); }

  ParsedCommandLine Parse(
      const std::vector<std::pair<std::string, std::string>>& env) {
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    char arg0[] = "loophost";
    char* argv[] = {arg0, nullptr};
    return ParseHostConfig(1, argv, CurrentEnvironment(), {});
  }
};

TEST_F(HostConfigEventsTest, Defaults) {
  ParsedCommandLine p = Parse({});
  ASSERT_TRUE(p.run) << p.output;
  const EventConfig& e = p.config.events;
  EXPECT_EQ(e.api_addr.host, "127.0.0.1");
  EXPECT_EQ(e.api_addr.port, 9085);
  EXPECT_EQ(e.transport_plugin, "http");
  EXPECT_EQ(e.external_base, "http://localhost:9085");
  EXPECT_EQ(e.dedup_window, absl::Seconds(1));
  EXPECT_EQ(e.retention_age, absl::Hours(24));
  EXPECT_EQ(e.retention_events, 10000u);
  EXPECT_EQ(e.remove_after_failures, 0);
  EXPECT_EQ(e.backoff_max, absl::Seconds(10));
  EXPECT_EQ(e.delivery_window, 8u);
}

TEST_F(HostConfigEventsTest, ValuesFromTheEnvironment) {
  ParsedCommandLine p =
      Parse({{"LOOPHOST_API_ADDR", "0.0.0.0:9999"},
             {"TRANSPORT_HOST", "https://node-1.example:443/x"},
             {"LOOPHOST_DEDUP_WINDOW", "0"},
             {"LOOPHOST_RETENTION_MAX_AGE", "1h"},
             {"LOOPHOST_RETENTION_MAX_EVENTS", "0"},
             {"LOOPHOST_REMOVE_AFTER_FAILURES", "5"},
             {"LOOPHOST_DELIVERY_BACKOFF_MAX", "2s"},
             {"LOOPHOST_DELIVERY_WINDOW", "1"}});
  ASSERT_TRUE(p.run) << p.output;
  const EventConfig& e = p.config.events;
  EXPECT_EQ(e.api_addr.port, 9999);
  EXPECT_EQ(e.transport_plugin, "http");
  EXPECT_EQ(e.external_base, "https://node-1.example:443");
  EXPECT_EQ(e.dedup_window, absl::ZeroDuration());
  EXPECT_EQ(e.retention_age, absl::Hours(1));
  EXPECT_EQ(e.retention_events, 0u);
  EXPECT_EQ(e.remove_after_failures, 5);
  EXPECT_EQ(e.backoff_max, absl::Seconds(2));
  EXPECT_EQ(e.delivery_window, 1u);
}

TEST_F(HostConfigEventsTest, BadValuesAreOneLineNamingTheVariable) {
  const std::vector<std::pair<std::pair<std::string, std::string>, std::string>>
      cases = {
          {{"TRANSPORT_HOST", "amqp://localhost:5672"},
           "TRANSPORT_HOST=amqp://localhost:5672: scheme \"amqp\" has no "
           "transport plugin"},
          {{"TRANSPORT_HOST", "localhost:9085"},
           "TRANSPORT_HOST=localhost:9085: expected a URL"},
          {{"TRANSPORT_HOST", "http://"}, "TRANSPORT_HOST=http://: no host"},
          {{"LOOPHOST_API_ADDR", "nowhere"}, "LOOPHOST_API_ADDR=nowhere"},
          {{"LOOPHOST_DEDUP_WINDOW", "soon"}, "LOOPHOST_DEDUP_WINDOW=soon"},
          {{"LOOPHOST_RETENTION_MAX_EVENTS", "-1"},
           "LOOPHOST_RETENTION_MAX_EVENTS=-1"},
          {{"LOOPHOST_REMOVE_AFTER_FAILURES", "x"},
           "LOOPHOST_REMOVE_AFTER_FAILURES=x"},
          {{"LOOPHOST_DELIVERY_WINDOW", "0"}, "LOOPHOST_DELIVERY_WINDOW=0"},
      };
  for (const auto& [var, message] : cases) {
    SetUp();
    ParsedCommandLine p = Parse({var});
    EXPECT_FALSE(p.run) << var.first;
    EXPECT_EQ(p.exit_code, 2) << var.first;
    EXPECT_THAT(p.output, HasSubstr(message));
    EXPECT_EQ(std::count(p.output.begin(), p.output.end(), '\n'), 1)
        << p.output;
  }
}

TEST(ParseTransportHostTest, SchemeChoosesThePluginAndKeepsHostPort) {
  auto t = ParseTransportHost("HTTP://10.0.0.1:9085/api");
  ASSERT_THAT(t, IsOk());
  EXPECT_EQ(t->plugin, "http");
  EXPECT_EQ(t->external_base, "http://10.0.0.1:9085");
  EXPECT_THAT(ParseTransportHost("amqp://x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace loophost::host
