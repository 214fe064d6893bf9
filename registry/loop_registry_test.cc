// Tests of LoopRegistry: names, env config, machine-wide port reservation,
// thread-safety.
#include "registry/loop_registry.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <set>
#include <thread>

#include "common/status_matchers.h"

namespace loophost::registry {
namespace {

using ::loophost::testing::IsOk;
using ::loophost::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Holds 127.0.0.1:<kernel-chosen port> bound for the test's lifetime.
class BoundPort {
 public:
  BoundPort() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(
        ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  uint16_t port() const { return port_; }

 private:
  UniqueFd fd_;
  uint16_t port_ = 0;
};

LoopRegistryOptions Options(uint16_t first = 20000, uint16_t last = 20999) {
  LoopRegistryOptions options;
  options.ports = {first, last};
  return options;  // default lock dir: shared with parallel runs, which is the
                   // point
}

TEST(LoopRegistry, RegisterGivesPortAndEnv) {
  LoopRegistry registry(Options());
  auto loop = registry.Register("ptp", {{"NODE_NAME", "node1"}});
  ASSERT_THAT(loop, IsOk());
  EXPECT_EQ(loop->name, "ptp");
  EXPECT_GE(loop->prometheus_port, 20000);
  EXPECT_LE(loop->prometheus_port, 20999);
  EXPECT_EQ(loop->env.at("LOOP_NAME"), "ptp");
  EXPECT_EQ(loop->env.at("LOOP_PROMETHEUS_PORT"),
            std::to_string(loop->prometheus_port));
  EXPECT_EQ(loop->env.at("NODE_NAME"), "node1");
  auto got = registry.Get("ptp");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->prometheus_port, loop->prometheus_port);
}

TEST(LoopRegistry, SecondRegisterIsAlreadyExists) {
  LoopRegistry registry(Options());
  ASSERT_THAT(registry.Register("ptp"), IsOk());
  EXPECT_THAT(registry.Register("ptp"),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("\"ptp\"")));
}

TEST(LoopRegistry, RejectsBadNames) {
  LoopRegistry registry(Options());
  for (const char* name : {"", "PTP", "a-b", "a b", "x/y"}) {
    EXPECT_THAT(registry.Register(name),
                StatusIs(absl::StatusCode::kInvalidArgument))
        << name;
  }
}

TEST(LoopRegistry, ListIsSortedAndUnregisterRemoves) {
  LoopRegistry registry(Options());
  ASSERT_THAT(registry.Register("zeta"), IsOk());
  ASSERT_THAT(registry.Register("alpha"), IsOk());
  ASSERT_THAT(registry.Register("mid"), IsOk());
  std::vector<std::string> names;
  for (const auto& loop : registry.List()) names.push_back(loop.name);
  EXPECT_THAT(names, ElementsAre("alpha", "mid", "zeta"));
  EXPECT_THAT(registry.Unregister("mid"), IsOk());
  EXPECT_THAT(registry.Get("mid"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(registry.Unregister("mid"),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(LoopRegistry, NeverHandsOutAPortInUse) {
  BoundPort taken;
  LoopRegistry registry(Options(taken.port(), taken.port()));
  EXPECT_THAT(registry.Register("ptp"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("no free Prometheus port in " +
                                 std::to_string(taken.port()))));
}

TEST(LoopRegistry, UnregisterFreesThePort) {
  // A one-port range next to a kernel-chosen port: reserve, exhaust, free,
  // reuse.
  BoundPort probe;
  uint16_t port = probe.port() + 1;
  LoopRegistry registry(Options(port, port));
  auto first = registry.Register("a");
  if (!first.ok()) GTEST_SKIP() << "neighbouring port busy: " << first.status();
  EXPECT_EQ(first->prometheus_port, port);
  EXPECT_THAT(registry.Register("b"),
              StatusIs(absl::StatusCode::kResourceExhausted));
  ASSERT_THAT(registry.Unregister("a"), IsOk());
  auto second = registry.Register("b");
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(second->prometheus_port, port);
}

TEST(LoopRegistry, TwoHostsNeverShareAPort) {
  // Two registries stand for two loophost processes (parallel test runs) on one
  // machine.
  LoopRegistry host_a(Options());
  LoopRegistry host_b(Options());
  std::set<uint16_t> ports;
  for (int i = 0; i < 5; ++i) {
    auto a = host_a.Register("a" + std::to_string(i));
    auto b = host_b.Register("b" + std::to_string(i));
    ASSERT_THAT(a, IsOk());
    ASSERT_THAT(b, IsOk());
    ports.insert(a->prometheus_port);
    ports.insert(b->prometheus_port);
  }
  EXPECT_EQ(ports.size(), 10u);
}

TEST(LoopRegistry, ConcurrentRegistersGetDistinctPorts) {
  LoopRegistry registry(Options());
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&registry, i] {
      EXPECT_THAT(registry.Register("t" + std::to_string(i)), IsOk());
    });
  }
  for (auto& t : threads) t.join();
  std::set<uint16_t> ports;
  for (const auto& loop : registry.List()) ports.insert(loop.prometheus_port);
  EXPECT_EQ(ports.size(), static_cast<size_t>(kThreads));
}

}  // namespace
}  // namespace loophost::registry
