// Tests of the integration-test harness itself (child_process.h,
// loophost_process.h's FindSample), with /bin/sh as the child.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "tests/testing/child_process.h"
#include "tests/testing/loophost_process.h"

namespace loophost::testing {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<ChildProcess> Sh(const TempDir& dir,
                                 const std::string& script) {
  ChildOptions options;
  options.argv = {"/bin/sh", "-c", script};
  options.env = {"PATH=/usr/bin:/bin", "GREETING=hi"};
  options.stdout_path = dir.Join("out");
  options.stderr_path = dir.Join("err");
  absl::StatusOr<std::unique_ptr<ChildProcess>> child =
      ChildProcess::Spawn(options);
  EXPECT_THAT(child, IsOk());
  return child.ok() ? std::move(*child) : nullptr;
}

TEST(ChildProcessTest, RunsWithExplicitEnvAndCapturesOutput) {
  auto dir = TempDir::Create("lh-harness-");
  ASSERT_THAT(dir, IsOk());
  auto child = Sh(*dir, "echo $GREETING; echo oops >&2; exit 3");
  ASSERT_NE(child, nullptr);
  absl::StatusOr<ExitStatus> st = child->Wait(absl::Seconds(10));
  ASSERT_THAT(st, IsOk());
  EXPECT_TRUE(st->ExitedWith(3)) << st->ToString();
  EXPECT_EQ(st->ToString(), "exited with code 3");
  EXPECT_EQ(ReadFileOrEmpty(dir->Join("out")), "hi\n");
  EXPECT_EQ(ReadFileOrEmpty(dir->Join("err")), "oops\n");
  EXPECT_FALSE(child->running());
}

TEST(ChildProcessTest, OwnProcessGroupAndStdinDevNull) {
  auto dir = TempDir::Create("lh-harness-");
  ASSERT_THAT(dir, IsOk());
  auto child = Sh(*dir, "cut -d' ' -f5 /proc/$$/stat; cat; echo done");
  ASSERT_NE(child, nullptr);
  ASSERT_THAT(child->Wait(absl::Seconds(10)), IsOk());
  EXPECT_EQ(ReadFileOrEmpty(dir->Join("out")),
            absl::StrCat(child->pid(), "\ndone\n"));
}

TEST(ChildProcessTest, WaitTimesOutThenKillAndReapEndsTheGroup) {
  auto dir = TempDir::Create("lh-harness-");
  ASSERT_THAT(dir, IsOk());
  // A grandchild in the same group must go too.
  auto child = Sh(*dir, "sleep 600 & echo $!; wait");
  ASSERT_NE(child, nullptr);
  ASSERT_TRUE(
      WaitFor([&] { return !ReadFileOrEmpty(dir->Join("out")).empty(); },
              absl::Seconds(10), "grandchild pid"));
  pid_t grandchild = std::stoi(ReadFileOrEmpty(dir->Join("out")));
  auto watched = ForeignProcess::Open(grandchild);
  ASSERT_THAT(watched, IsOk());

  EXPECT_THAT(child->Wait(absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  ExitStatus st = child->KillAndReap();
  EXPECT_FALSE(st.exited);
  EXPECT_EQ(st.signal, SIGKILL);
  EXPECT_THAT(st.ToString(), HasSubstr("killed by signal 9"));
  EXPECT_TRUE(watched->WaitExited(absl::Seconds(10)));
}

TEST(ChildProcessTest, ExecFailureIsAnError) {
  ChildOptions options;
  options.argv = {"/nonexistent/binary"};
  EXPECT_THAT(ChildProcess::Spawn(options),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("exec /nonexistent/binary")));
}

TEST(ChildProcessTest, DestructorReapsARunningChild) {
  auto dir = TempDir::Create("lh-harness-");
  ASSERT_THAT(dir, IsOk());
  pid_t pid = 0;
  {
    auto child = Sh(*dir, "exec sleep 600");
    ASSERT_NE(child, nullptr);
    pid = child->pid();
  }
  // Reaped: no such child any more.
  EXPECT_EQ(::kill(pid, 0), -1);
}

TEST(TempDirTest, RemovedUnlessKept) {
  std::string kept_path, removed_path;
  {
    auto removed = TempDir::Create("lh-harness-");
    ASSERT_THAT(removed, IsOk());
    removed_path = removed->path();
    auto kept = TempDir::Create("lh-harness-");
    ASSERT_THAT(kept, IsOk());
    kept_path = kept->path();
    kept->Keep();
    ASSERT_EQ(::mkdir(removed->Join("sub").c_str(), 0700), 0);
  }
  struct stat st;
  EXPECT_NE(::stat(removed_path.c_str(), &st), 0);
  EXPECT_EQ(::stat(kept_path.c_str(), &st), 0);
  ::rmdir(kept_path.c_str());
}

TEST(WaitForTest, ReportsWhatTimedOut) {
  ::testing::AssertionResult r =
      WaitFor([] { return false; }, absl::Milliseconds(30), "the impossible");
  EXPECT_FALSE(r);
  EXPECT_THAT(r.message(), HasSubstr("waiting for: the impossible"));
  int calls = 0;
  EXPECT_TRUE(WaitFor([&] { return ++calls == 3; }, absl::Seconds(10), "3"));
}

TEST(FindSampleTest, MatchesNameAndLabelSubset) {
  const std::string text =
      "# HELP loop_plugin_restarts_total Restarts.\n"
      "# TYPE loop_plugin_restarts_total counter\n"
      "loop_plugin_restarts_total{plugin=\"example\"} 0\n"
      "loop_plugin_restarts_total{node=\"n\",plugin=\"gogo\"} 2\n"
      "loop_plugin_restarts_total_x{plugin=\"gogo\"} 7\n"
      "loop_plugin_up 1 1700000000000\n"
      "odd{v=\"a\\\"b\"} 5\n";
  EXPECT_EQ(
      FindSample(text, "loop_plugin_restarts_total", {{"plugin", "gogo"}}), 2);
  EXPECT_EQ(FindSample(text, "loop_plugin_restarts_total", {}), 0);
  EXPECT_EQ(FindSample(text, "loop_plugin_up", {}), 1);
  EXPECT_EQ(FindSample(text, "odd", {{"v", "a\"b"}}), 5);
  EXPECT_EQ(FindSample(text, "loop_plugin_restarts_total", {{"plugin", "x"}}),
            std::nullopt);
  EXPECT_EQ(FindSample(text, "missing", {}), std::nullopt);
}

TEST(LastLinesTest, KeepsTheTail) {
  EXPECT_EQ(LastLines("a\nb\nc\n", 2), "b\nc\n");
  EXPECT_EQ(LastLines("a\nb\nc", 5), "a\nb\nc");
  EXPECT_EQ(LastLines("", 3), "");
}

}  // namespace
}  // namespace loophost::testing
