// PtpConfigFromEnv: defaults, every variable, and bad values as one line that
// names the variable.
#include "loops/ptp/ptp_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/status_matchers.h"

namespace loophost::loops::ptp {
namespace {

using ::loophost::testing::IsOk;
using ::loophost::testing::StatusIs;
using ::testing::HasSubstr;

TEST(PtpConfig, Defaults) {
  auto c = PtpConfigFromEnv({{"NODE_NAME", "n1"}});
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->node_name, "n1");
  EXPECT_EQ(c->thresholds.max_offset_ns, 100);
  EXPECT_EQ(c->thresholds.min_offset_ns, -100);
  EXPECT_EQ(c->thresholds.holdover_timeout, absl::Seconds(5));
  EXPECT_EQ(c->log_socket, "/cloud-native/events.sock");
  EXPECT_EQ(c->log_file, "");
  EXPECT_EQ(c->state_dir, "");
  EXPECT_FALSE(PtpConfigFromEnv({})->node_name.empty());  // the hostname
}

TEST(PtpConfig, EveryVariable) {
  auto c = PtpConfigFromEnv({{"NODE_NAME", "n2"},
                             {"PTP_THRESHOLD_MAX_OFFSET_NS", "3000"},
                             {"PTP_THRESHOLD_MIN_OFFSET_NS", " -2500 "},
                             {"PTP_HOLDOVER_TIMEOUT_S", "0"},
                             {"PTP_LOG_SOCKET", "/run/x.sock"},
                             {"PTP_LOG_FILE", "/var/log/ptp.log"},
                             {"LOOP_STATE_DIR", "/state/loops/ptp"}});
  ASSERT_THAT(c, IsOk());
  EXPECT_EQ(c->thresholds.max_offset_ns, 3000);
  EXPECT_EQ(c->thresholds.min_offset_ns, -2500);
  EXPECT_EQ(c->thresholds.holdover_timeout, absl::ZeroDuration());
  EXPECT_EQ(c->log_socket, "/run/x.sock");
  EXPECT_EQ(c->log_file, "/var/log/ptp.log");
  EXPECT_EQ(c->state_dir, "/state/loops/ptp");
}

TEST(PtpConfig, BadValuesNameTheVariable) {
  struct Case {
    const char* var;
    const char* value;
    const char* message;
  } cases[] = {
      {"PTP_THRESHOLD_MAX_OFFSET_NS", "abc",
       "PTP_THRESHOLD_MAX_OFFSET_NS=abc: not an integer"},
      {"PTP_THRESHOLD_MIN_OFFSET_NS", "1.5",
       "PTP_THRESHOLD_MIN_OFFSET_NS=1.5: not an integer"},
      {"PTP_THRESHOLD_MIN_OFFSET_NS", "100",
       "PTP_THRESHOLD_MIN_OFFSET_NS=100: must be less than "
       "PTP_THRESHOLD_MAX_OFFSET_NS=100"},
      {"PTP_HOLDOVER_TIMEOUT_S", "-1",
       "PTP_HOLDOVER_TIMEOUT_S=-1: out of range"},
      {"PTP_HOLDOVER_TIMEOUT_S", "5s",
       "PTP_HOLDOVER_TIMEOUT_S=5s: not an integer"},
      {"NODE_NAME", "a/b", "NODE_NAME=a/b: must not contain '/'"},
  };
  for (const Case& c : cases) {
    auto config = PtpConfigFromEnv({{c.var, c.value}});
    EXPECT_THAT(config, StatusIs(absl::StatusCode::kInvalidArgument,
                                 HasSubstr(c.message)))
        << c.var << "=" << c.value;
    if (!config.ok()) {
      EXPECT_EQ(config.status().message().find('\n'), absl::string_view::npos);
    }
  }
}

}  // namespace
}  // namespace loophost::loops::ptp
