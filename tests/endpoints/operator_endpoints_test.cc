// The operator endpoints of a real loophost running the example loop twice:
// "echo" as a child process (ECHO_PLUGIN_CMD=loop-example) and "example"
// in-process (EXAMPLE_PLUGIN=true). Both must look the same to the operator,
// and every metrics endpoint must pass `promtool check metrics`.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "tests/testing/loophost_process.h"

namespace loophost::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Runs `promtool check metrics` on `exposition`; returns its output, "" when
// clean.
std::string PromtoolProblems(const TempDir& dir,
                             const std::string& exposition) {
  std::string input = dir.Join("exposition.txt");
  std::ofstream(input) << exposition;
  ChildOptions options;
  options.argv = {"/bin/sh", "-c",
                  absl::StrCat(LH_PROMTOOL, " check metrics < '", input, "'")};
  options.env = {"PATH=/usr/bin:/bin"};
  options.stdout_path = dir.Join("promtool.out");
  options.stderr_path = dir.Join("promtool.out");
  auto child = ChildProcess::Spawn(options);
  if (!child.ok()) return std::string(child.status().message());
  auto status = (*child)->Wait(absl::Seconds(30));
  std::string output = ReadFileOrEmpty(dir.Join("promtool.out"));
  if (!status.ok() || !status->ExitedWith(0))
    return "promtool failed: " + output;
  return output;
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

class OperatorEndpointsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    LoophostOptions options;
    options.binary = LH_LOOPHOST_BINARY;
    options.env = {{"ECHO_PLUGIN_CMD", LH_LOOP_EXAMPLE_BINARY},
                   {"EXAMPLE_PLUGIN", "true"}};
    auto host = LoophostProcess::Start(std::move(options));
    ASSERT_THAT(host, IsOk());
    host_ = std::move(*host).release();
    ASSERT_TRUE(host_->WaitFor(
        [] {
          return host_->PluginState("echo") == "serving" &&
                 host_->PluginState("example") == "serving";
        },
        absl::Seconds(20), "both plugins serving"));
  }
  static void TearDownTestSuite() {
    delete host_;
    host_ = nullptr;
  }
  static LoophostProcess* host_;
};
LoophostProcess* OperatorEndpointsTest::host_ = nullptr;

TEST_F(OperatorEndpointsTest, InProcessAndChildLookTheSame) {
  auto echo = host_->Plugin("echo");
  auto example = host_->Plugin("example");
  ASSERT_TRUE(echo.has_value() && example.has_value());
  EXPECT_EQ((*echo)["in_process"], false);
  EXPECT_EQ((*example)["in_process"], true);
  EXPECT_GT((*echo)["pid"].get<int>(), 0);
  for (const char* field : {"version", "kinds", "state", "restarts"}) {
    EXPECT_EQ((*echo)[field], (*example)[field]) << field;
  }
  EXPECT_EQ((*echo)["checks"]["example.echo"], "");
  EXPECT_EQ((*example)["checks"]["example.echo"], "");
  EXPECT_GT((*echo)["prometheus_port"].get<int>(), 0);
  EXPECT_GT((*example)["prometheus_port"].get<int>(), 0);
}

TEST_F(OperatorEndpointsTest, MergedMetricsHoldHostAndBothPluginsOnce) {
  auto metrics = host_->Get("/metrics");
  ASSERT_THAT(metrics, IsOk());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_THAT(metrics->content_type, HasSubstr("text/plain"));
  EXPECT_EQ(host_->Metric("loop_plugin_up", {{"plugin", "echo"}}), 1);
  EXPECT_EQ(host_->Metric("loop_plugin_up", {{"plugin", "example"}}), 1);
  EXPECT_EQ(host_->Metric("loop_plugin_health",
                          {{"plugin", "echo"}, {"check", "example.echo"}}),
            1);
  // Both plugins export the same family: one HELP and one TYPE line in the
  // merge.
  EXPECT_EQ(Count(metrics->body, "# TYPE loop_example_echo_requests_total "),
            1u)
      << metrics->body;
  EXPECT_EQ(Count(metrics->body, "# HELP loop_example_echo_requests_total "),
            1u);
  auto host_only = host_->Get("/metrics?plugins=none");
  ASSERT_THAT(host_only, IsOk());
  EXPECT_THAT(host_only->body, HasSubstr("loop_plugin_up"));
  EXPECT_THAT(host_only->body,
              Not(HasSubstr("loop_example_echo_requests_total")));
}

TEST_F(OperatorEndpointsTest, EveryMetricsEndpointPassesPromtool) {
  if (std::string(LH_PROMTOOL).empty())
    GTEST_SKIP() << "promtool not installed (Debian package prometheus)";
  auto dir = TempDir::Create("lh-promtool-");
  ASSERT_THAT(dir, IsOk());
  for (const char* path :
       {"/metrics", "/metrics?plugins=none", "/plugins/echo/metrics",
        "/plugins/example/metrics", "/plugins/http/metrics"}) {
    auto response = host_->Get(path);
    ASSERT_THAT(response, IsOk());
    ASSERT_EQ(response->status, 200) << path;
    EXPECT_EQ(PromtoolProblems(*dir, response->body), "") << path;
  }
}

TEST_F(OperatorEndpointsTest, PluginMetricsAndDiscovery) {
  auto unknown = host_->Get("/plugins/nope/metrics");
  ASSERT_THAT(unknown, IsOk());
  EXPECT_EQ(unknown->status, 404);
  auto echo = host_->Get("/plugins/echo/metrics");
  ASSERT_THAT(echo, IsOk());
  EXPECT_THAT(echo->body, HasSubstr("loop_example_echo_requests_total"));

  auto discovery = host_->Get("/discovery");
  ASSERT_THAT(discovery, IsOk());
  auto groups = nlohmann::json::parse(discovery->body, nullptr, false);
  ASSERT_TRUE(groups.is_array()) << discovery->body;
  // host, echo, example, and the HTTP transport (on by default)
  ASSERT_EQ(groups.size(), 4u) << discovery->body;
  const std::string target =
      absl::StrCat(host_->metrics_host(), ":", host_->metrics_port());
  std::set<std::string> paths;
  for (const auto& group : groups) {
    EXPECT_EQ(group["targets"], nlohmann::json::array({target})) << group;
    paths.insert(group["labels"]["__metrics_path__"].get<std::string>());
  }
  EXPECT_EQ(paths, (std::set<std::string>{"/metrics", "/plugins/echo/metrics",
                                          "/plugins/example/metrics",
                                          "/plugins/http/metrics"}));
}

TEST_F(OperatorEndpointsTest, HealthAndProbes) {
  auto health = host_->Get("/health");
  ASSERT_THAT(health, IsOk());
  EXPECT_EQ(health->status, 200);
  EXPECT_THAT(health->body, HasSubstr("ok echo\n"));
  EXPECT_THAT(health->body, HasSubstr("ok example\n"));
  EXPECT_THAT(health->body, HasSubstr("ok example.echo\n"));
  auto json = host_->Get("/health", {{"Accept", "application/json"}});
  ASSERT_THAT(json, IsOk());
  auto parsed = nlohmann::json::parse(json->body, nullptr, false);
  EXPECT_EQ(parsed["status"], "ok") << json->body;
  for (const char* probe : {"/healthz", "/readyz"}) {
    auto response = host_->Get(probe);
    ASSERT_THAT(response, IsOk());
    EXPECT_EQ(response->status, 200) << probe;
  }
}

}  // namespace
}  // namespace loophost::testing
