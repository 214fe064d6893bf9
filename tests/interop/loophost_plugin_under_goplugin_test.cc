// Interoperability, direction 2: a loophost C++ plugin (loop-example, built
// with the SDK) runs under a hashicorp/go-plugin 1.0.1 host
// (tests/goplugin/src/lhgoplugin/host): plugin.NewClient with gRPC only and
// loophost's cookie, Client() (exec, handshake line, dial), Ping()
// (grpc.health "plugin"), Dispense + one loophost.v1.Echo call, then Kill(),
// which must not need SIGKILL: the plugin exits by itself with code 0 after
// GRPCController.Shutdown.
//
// The Go host checks all of that itself and prints one JSON line; this test
// runs it, checks its exit status and the line.
//
// Binaries come from CMake: LH_GOPLUGIN_HOST, LH_LOOP_EXAMPLE_BINARY.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "tests/testing/child_process.h"

namespace loophost::testing {
namespace {

using ::testing::StartsWith;

constexpr absl::Duration kRunTimeout = absl::Seconds(60);

class LoophostPluginUnderGoPluginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<TempDir> dir = TempDir::Create("lh-interop-gohost-");
    ASSERT_THAT(dir, IsOk());
    dir_ = std::make_unique<TempDir>(std::move(*dir));
  }

  void TearDown() override {
    if (HasFailure()) {
      dir_->Keep();
      std::fprintf(
          stderr, "work dir kept: %s\n--- go host stderr ---\n%s\n",
          dir_->path().c_str(),
          LastLines(ReadFileOrEmpty(dir_->Join("host.stderr")), 80).c_str());
    }
  }

  // Runs the Go host on loop-example and returns its JSON result line.
  nlohmann::json RunGoHost(ExitStatus* exit_status) {
    ChildOptions options;
    options.argv = {LH_GOPLUGIN_HOST, "-plugin", LH_LOOP_EXAMPLE_BINARY,
                    "-payload", "interop payload \x01\x02"};
    // go-plugin passes its host's whole environment on to the plugin; the
    // plugin's socket goes to $TMPDIR (go-plugin 1.0.1 sets no
    // PLUGIN_UNIX_SOCKET_DIR).
    options.env = {absl::StrCat("TMPDIR=", dir_->path()),
                   "LOOP_LOG_LEVEL=debug"};
    if (const char* path = std::getenv("PATH")) {
      options.env.push_back(absl::StrCat("PATH=", path));
    }
    options.stdout_path = dir_->Join("host.stdout");
    options.stderr_path = dir_->Join("host.stderr");
    absl::StatusOr<std::unique_ptr<ChildProcess>> host =
        ChildProcess::Spawn(options);
    EXPECT_THAT(host, IsOk());
    if (!host.ok()) return nullptr;
    absl::StatusOr<ExitStatus> st = (*host)->Wait(kRunTimeout);
    EXPECT_THAT(st, IsOk()) << "the Go host did not finish; its process group "
                               "(with the plugin) is SIGKILLed";
    if (!st.ok()) return nullptr;
    *exit_status = *st;
    std::string out = ReadFileOrEmpty(dir_->Join("host.stdout"));
    nlohmann::json j = nlohmann::json::parse(LastLines(out, 1), nullptr,
                                             /*allow_exceptions=*/false);
    EXPECT_TRUE(j.is_object()) << "Go host stdout: " << out;
    return j;
  }

  std::unique_ptr<TempDir> dir_;
};

TEST_F(LoophostPluginUnderGoPluginTest, ClientPingEchoAndGracefulKill) {
  ExitStatus st;
  nlohmann::json r = RunGoHost(&st);
  ASSERT_TRUE(r.is_object());
  std::printf("[go host result] %s\n", r.dump().c_str());

  EXPECT_TRUE(st.ExitedWith(0)) << st.ToString() << "; " << r.dump();
  EXPECT_EQ(r.value("ok", false), true) << r.value("reason", "");
  // Handshake as go-plugin saw it.
  EXPECT_EQ(r.value("negotiated_version", 0), 1);
  EXPECT_EQ(r.value("protocol", ""), "grpc");
  EXPECT_EQ(r.value("network", ""), "unix");
  EXPECT_THAT(r.value("address", ""), StartsWith(dir_->path() + "/"));
  // One Echo call came back intact.
  EXPECT_EQ(r.value("echo_payload", ""), "interop payload \x01\x02");
  // Kill(): Shutdown RPC, the plugin exited by itself, no SIGKILL.
  EXPECT_EQ(r.value("sigkill_needed", true), false);
  EXPECT_EQ(r.value("exit_code", -1), 0);
  EXPECT_FALSE(r.contains("exit_signal")) << r.dump();
  EXPECT_LT(r.value("kill_ms", 1e9), 2000.0);
  EXPECT_EQ(r.value("exited", false), true);
  // go-plugin relayed the plugin's stderr.
  EXPECT_GT(r.value("plugin_stderr_lines", 0), 0);

  for (const char* key : {"client_ms", "ping_ms", "echo_ms", "kill_ms"}) {
    ::testing::Test::RecordProperty(key, absl::StrCat(r.value(key, -1.0)));
  }
  // go-plugin's log must not mention a forced kill.
  EXPECT_FALSE(absl::StrContains(ReadFileOrEmpty(dir_->Join("host.stderr")),
                                 "plugin failed to exit gracefully"));
}

}  // namespace
}  // namespace loophost::testing
