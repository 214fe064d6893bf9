// Tests of PluginSupervisor's lifecycle on in-process generations of the
// example loop (real gRPC, no child processes) and of RestartBackoff. Child
// processes are covered by the integration tests under tests/.
#include "host/plugin_supervisor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>

#include <atomic>

#include "loops/example/example_loop.h"

namespace loophost::host {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Key;
using ::testing::Pair;

constexpr absl::Duration kWait = absl::Seconds(10);

// Waits for `predicate` on the supervisor's status, with a deadline.
::testing::AssertionResult WaitForStatus(
    const PluginSupervisor& supervisor,
    const std::function<bool(const PluginStatus&)>& predicate,
    absl::Duration timeout = kWait) {
  absl::Time deadline = absl::Now() + timeout;
  PluginStatus status;
  while (absl::Now() < deadline) {
    status = supervisor.Status();
    if (predicate(status)) return ::testing::AssertionSuccess();
    absl::SleepFor(
        absl::Milliseconds(5));  // polling a snapshot, not synchronising
  }
  return ::testing::AssertionFailure()
         << "state " << PluginStateName(status.state) << ", restarts "
         << status.restarts << ", last_error " << status.last_error;
}

// An in-process example loop whose "process" can be made to die through an
// eventfd.
class DyingInstance : public PluginInstance {
 public:
  DyingInstance()
      : inner_("example", loops::example::MakeExampleLoop,
               {{"LOOP_NAME", "example"}}),
        exit_(::eventfd(0, EFD_CLOEXEC)) {}
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Start(
      absl::Time deadline) override {
    return inner_.Start(deadline);
  }
  int exit_fd() const override { return exit_.get(); }
  std::string CollectExit() override { return "killed by signal 9 (Killed)"; }
  std::string Stop(absl::Duration grace) override { return inner_.Stop(grace); }
  std::string Kill() override { return inner_.Kill(); }
  void Die() {
    uint64_t one = 1;
    ASSERT_EQ(::write(exit_.get(), &one, sizeof(one)), 8);
  }

 private:
  InProcessPluginInstance inner_;
  UniqueFd exit_;
};

class FailingInstance : public PluginInstance {
 public:
  absl::StatusOr<std::shared_ptr<grpc::Channel>> Start(absl::Time) override {
    return absl::DeadlineExceededError("handshake: no handshake within 5s");
  }
  std::string Stop(absl::Duration) override { return "stopped"; }
  std::string Kill() override { return "killed"; }
};

SupervisorOptions FastOptions() {
  SupervisorOptions options;
  options.health_interval = absl::Milliseconds(50);
  options.health_deadline = absl::Milliseconds(500);
  options.backoff_initial = absl::Milliseconds(20);
  options.backoff_max = absl::Milliseconds(100);
  return options;
}

TEST(RestartBackoff, FirstAtOnceThenDoublingWithJitterCappedAndReset) {
  RestartBackoff backoff(absl::Milliseconds(100), absl::Seconds(1),
                         /*seed=*/42);
  EXPECT_EQ(backoff.Next(), absl::ZeroDuration());
  const double expected_ms[] = {100, 200, 400, 800, 1000, 1000};
  for (double ms : expected_ms) {
    absl::Duration d = backoff.Next();
    EXPECT_GE(d, absl::Milliseconds(ms * 0.8));
    EXPECT_LE(d, absl::Milliseconds(ms * 1.2));
  }
  backoff.Reset();
  EXPECT_EQ(backoff.Next(), absl::ZeroDuration());
}

TEST(PluginSupervisor, ServesReportsChecksAndStops) {
  HostMetrics metrics;
  PluginSupervisor supervisor(
      {"example", "", 0},
      [] {
        return std::make_unique<InProcessPluginInstance>(
            "example", loops::example::MakeExampleLoop,
            sdk::LoopEnv{{"LOOP_NAME", "example"}});
      },
      FastOptions(), metrics);
  supervisor.Start();
  ASSERT_TRUE(supervisor.WaitUntilServing(absl::Now() + kWait));
  ASSERT_TRUE(WaitForStatus(supervisor, [](const PluginStatus& s) {
    return s.checks.count("example.echo") > 0;
  }));
  PluginStatus status = supervisor.Status();
  EXPECT_EQ(status.state, PluginState::kServing);
  EXPECT_TRUE(status.in_process);
  EXPECT_EQ(status.checks.at("example"), "");
  EXPECT_EQ(status.checks.at("example.echo"), "");
  EXPECT_THAT(status.kinds, ::testing::IsEmpty());
  EXPECT_NE(supervisor.Client(), nullptr);
  supervisor.Stop();
  EXPECT_EQ(supervisor.Status().state, PluginState::kStopped);
  EXPECT_EQ(supervisor.Client(), nullptr);
}

TEST(PluginSupervisor, ExitIsSeenAtOnceAndRestartedAndCounted) {
  HostMetrics metrics;
  std::atomic<DyingInstance*> current{nullptr};
  PluginSupervisor supervisor(
      {"example", "/fake", 0},
      [&current] {
        auto instance = std::make_unique<DyingInstance>();
        current = instance.get();
        return instance;
      },
      FastOptions(), metrics);
  supervisor.Start();
  ASSERT_TRUE(supervisor.WaitUntilServing(absl::Now() + kWait));
  DyingInstance* first = current.load();
  first->Die();
  ASSERT_TRUE(WaitForStatus(supervisor, [](const PluginStatus& s) {
    return s.restarts == 1 && s.state == PluginState::kServing;
  }));
  EXPECT_NE(current.load(), first);
  supervisor.Stop();
}

TEST(PluginSupervisor, FailedStartsBackOffAndNameTheStep) {
  HostMetrics metrics;
  PluginSupervisor supervisor(
      {"broken", "/fake", 0},
      [] { return std::make_unique<FailingInstance>(); }, FastOptions(),
      metrics);
  supervisor.Start();
  ASSERT_TRUE(WaitForStatus(
      supervisor, [](const PluginStatus& s) { return s.restarts >= 3; }));
  PluginStatus status = supervisor.Status();
  EXPECT_NE(status.state, PluginState::kServing);
  EXPECT_THAT(
      status.checks,
      Contains(
          Pair("broken",
               HasSubstr("start failed: handshake: no handshake within 5s"))));
  absl::Time before = absl::Now();
  supervisor.Stop();  // interrupts the backoff wait
  EXPECT_LT(absl::Now() - before, absl::Seconds(1));
  EXPECT_EQ(supervisor.Status().state, PluginState::kStopped);
}

}  // namespace
}  // namespace loophost::host
