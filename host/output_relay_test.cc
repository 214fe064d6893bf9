// Tests for OutputRelay: line splitting, truncation, Unwatch semantics, many
// streams, and a 100 MB stream drained with bounded memory.
#include "host/output_relay.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "host/child_process_control.h"
#include "host/process_launcher.h"
#include "host/process_test_util.h"

namespace loophost::host {
namespace {

using ::testing::ElementsAre;
using ::testing::StartsWith;

constexpr absl::Duration kTimeout = absl::Seconds(10);

// Collects a stream's lines; thread-safe.
class Lines {
 public:
  OutputRelay::LineHandler Handler() {
    return [this](absl::string_view line) {
      absl::MutexLock lock(&mu_);
      lines_.emplace_back(line);
    };
  }
  std::vector<std::string> Get() {
    absl::MutexLock lock(&mu_);
    return lines_;
  }
  bool AwaitCount(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
      return lines_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
};

struct Pipe {
  UniqueFd read, write;
};

Pipe MakePipe() {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    ASSERT_GT(n, 0) << "write: " << errno;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

TEST(OutputRelayTest, SplitsLinesAndDeliversTheLastAtEof) {
  OutputRelay relay;
  Lines lines;
  Pipe p = MakePipe();
  uint64_t token = relay.Watch(std::move(p.read), lines.Handler());
  WriteAll(p.write.get(), "first\nsec");
  WriteAll(p.write.get(), "ond\n\nthird without newline");
  EXPECT_FALSE(relay.WaitForEof(token, absl::Milliseconds(20)));
  p.write.Reset();
  ASSERT_TRUE(relay.WaitForEof(token, kTimeout));
  EXPECT_THAT(lines.Get(),
              ElementsAre("first", "second", "", "third without newline"));
}

TEST(OutputRelayTest, CutsLongLinesAndCountsTheRest) {
  OutputRelay relay;
  Lines lines;
  Pipe p = MakePipe();
  uint64_t token = relay.Watch(std::move(p.read), lines.Handler());
  std::thread writer([fd = p.write.get()] {
    WriteAll(fd, std::string(OutputRelay::kMaxLineBytes + 5000, 'x'));
    WriteAll(fd, "\nnext\n");
    // A cut that would split "é" (2 bytes) backs off to a whole character.
    WriteAll(fd, std::string(OutputRelay::kMaxLineBytes - 1, 'y'));
    WriteAll(fd, "\xC3\xA9zz\n");
  });
  writer.join();
  p.write.Reset();
  ASSERT_TRUE(relay.WaitForEof(token, kTimeout));
  EXPECT_THAT(lines.Get(),
              ElementsAre(std::string(OutputRelay::kMaxLineBytes, 'x') +
                              "\xE2\x80\xA6[truncated 5000 bytes]",
                          "next",
                          std::string(OutputRelay::kMaxLineBytes - 1, 'y') +
                              "\xE2\x80\xA6[truncated 4 bytes]"));
}

TEST(OutputRelayTest, UnwatchStopsTheHandler) {
  PosixProcessLauncher launcher;
  auto child = launcher.Spawn({"/usr/bin/yes", {"yes", "line"}, {}});
  ASSERT_TRUE(child.ok()) << child.status();
  OutputRelay relay;
  auto unwatched = std::make_shared<std::atomic<bool>>(false);
  auto calls_after = std::make_shared<std::atomic<int>>(0);
  Lines lines;
  auto collect = lines.Handler();
  uint64_t token =
      relay.Watch(std::move(child->stdout_fd),
                  [unwatched, calls_after, collect](absl::string_view line) {
                    if (unwatched->load()) ++*calls_after;
                    collect(line);
                  });
  ASSERT_TRUE(lines.AwaitCount(1000, kTimeout));
  relay.Unwatch(token);
  unwatched->store(true);
  EXPECT_TRUE(relay.WaitForEof(token, absl::ZeroDuration()));
  // The read end is closed, so `yes` dies of SIGPIPE; give the relay a chance
  // to misbehave meanwhile.
  EXPECT_TRUE(WaitForExit(*child, kTimeout));
  EXPECT_THAT(ReapChild(*child), StartsWith("killed by signal 13"));
  EXPECT_EQ(calls_after->load(), 0);
  relay.Unwatch(token);  // twice: ignored
}

TEST(OutputRelayTest, UnwatchFromItsOwnHandler) {
  OutputRelay relay;
  Lines lines;
  Pipe p = MakePipe();
  auto token = std::make_shared<uint64_t>(0);
  auto collect = lines.Handler();
  *token = relay.Watch(std::move(p.read),
                       [&relay, token, collect](absl::string_view line) {
                         collect(line);
                         relay.Unwatch(*token);
                       });
  WriteAll(p.write.get(), "one\ntwo\nthree\n");
  ASSERT_TRUE(relay.WaitForEof(*token, kTimeout));
  EXPECT_THAT(lines.Get(), ElementsAre("one"));
}

TEST(OutputRelayTest, ManyStreamsAtOnce) {
  PosixProcessLauncher launcher;
  OutputRelay relay;
  constexpr size_t kStreams = 16;
  constexpr int kLines = 20000;
  std::vector<ChildProcess> children;
  std::vector<std::unique_ptr<Lines>> lines;
  std::vector<uint64_t> tokens;
  for (size_t i = 0; i < kStreams; ++i) {
    auto child = launcher.Spawn(testing::Shell(
        absl::StrCat("seq 1 ", kLines, "; seq 1 ", kLines, " >&2")));
    ASSERT_TRUE(child.ok()) << child.status();
    lines.push_back(std::make_unique<Lines>());
    tokens.push_back(
        relay.Watch(std::move(child->stdout_fd), lines.back()->Handler()));
    tokens.push_back(
        relay.Watch(std::move(child->stderr_fd), [](absl::string_view) {}));
    children.push_back(std::move(*child));
  }
  for (size_t i = 0; i < kStreams; ++i) {
    ASSERT_TRUE(relay.WaitForEof(tokens[2 * i], kTimeout));
    ASSERT_TRUE(relay.WaitForEof(tokens[2 * i + 1], kTimeout));
    std::vector<std::string> got = lines[i]->Get();
    ASSERT_EQ(got.size(), static_cast<size_t>(kLines));
    EXPECT_EQ(got.front(), "1");
    EXPECT_EQ(got.back(), absl::StrCat(kLines));
  }
  for (ChildProcess& child : children) {
    EXPECT_TRUE(WaitForExit(child, kTimeout));
    EXPECT_EQ(ReapChild(child), "exited with code 0");
  }
}

TEST(OutputRelayTest, DrainsHundredMegabytesWithBoundedMemory) {
  PosixProcessLauncher launcher;
  OutputRelay relay;
  constexpr int64_t kBytes = 100'000'000;
  // "0123456789\n" is 11 bytes: 9090909 full lines and a final "0".
  auto child = launcher.Spawn(
      testing::Shell(absl::StrCat("yes 0123456789 | head -c ", kBytes)));
  ASSERT_TRUE(child.ok()) << child.status();
  auto count = std::make_shared<std::atomic<int64_t>>(0);
  auto bad = std::make_shared<std::atomic<int64_t>>(0);
  const int64_t rss_before = testing::RssBytes();
  ASSERT_GT(rss_before, 0);
  uint64_t token = relay.Watch(std::move(child->stdout_fd),
                               [count, bad](absl::string_view line) {
                                 if (line != "0123456789" && line != "0") {
                                   ++*bad;
                                 }
                                 ++*count;
                               });
  int64_t rss_max = rss_before;
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (!relay.WaitForEof(token, absl::Milliseconds(20))) {
    rss_max = std::max(rss_max, testing::RssBytes());
    ASSERT_LT(absl::Now(), deadline) << "stream not drained";
  }
  EXPECT_EQ(count->load(), kBytes / 11 + 1);
  EXPECT_EQ(bad->load(), 0);
  EXPECT_LT(rss_max - rss_before, 50 * 1024 * 1024)
      << "RSS grew from " << rss_before << " to " << rss_max;
  EXPECT_TRUE(WaitForExit(*child, kTimeout));
  EXPECT_EQ(ReapChild(*child), "exited with code 0");
}

TEST(OutputRelayTest, DestructorClosesOpenStreams) {
  Pipe p = MakePipe();
  {
    OutputRelay relay;
    relay.Watch(std::move(p.read), [](absl::string_view) {});
    WriteAll(p.write.get(), "x\n");
  }
  // The read end is gone: writing now fails with EPIPE.
  struct sigaction ignore = {}, old = {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &old);
  EXPECT_EQ(::write(p.write.get(), "y", 1), -1);
  EXPECT_EQ(errno, EPIPE);
  ::sigaction(SIGPIPE, &old, nullptr);
}

}  // namespace
}  // namespace loophost::host
