// LogInput with real sockets and files: concurrent writers on the unix
// socket, lines split across writes, a last line without "\n"; a followed
// file across rotation, truncation and re-creation, resuming from its saved
// position; the deadline timer; oversized lines. Waits are conditions with
// deadlines, never sleeps.
#include "loops/ptp/log_input.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/status_matchers.h"
#include "common/unique_fd.h"

namespace loophost::loops::ptp {
namespace {

using ::loophost::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr absl::Duration kWait = absl::Seconds(10);

// What the handler saw, with waits on it.
class Sink {
 public:
  LogInputHandler Handler() {
    LogInputHandler h;
    h.on_lines = [this](const std::vector<absl::string_view>& lines) {
      absl::MutexLock lock(&mu_);
      for (absl::string_view line : lines) lines_.emplace_back(line);
    };
    h.next_deadline = [this] {
      absl::MutexLock lock(&mu_);
      return deadline_;
    };
    h.on_deadline = [this](absl::Time now) {
      absl::MutexLock lock(&mu_);
      fired_at_ = now;
      deadline_ = absl::InfiniteFuture();
    };
    h.on_health = [this](const std::string& error) {
      absl::MutexLock lock(&mu_);
      health_ = error;
    };
    return h;
  }

  bool WaitForLines(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return lines_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), kWait);
  }
  bool WaitForHealth(const std::string& prefix) {
    absl::MutexLock lock(&mu_);
    auto matches = [this, &prefix]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return health_.rfind(prefix, 0) == 0 &&
             (!prefix.empty() || health_.empty());
    };
    return mu_.AwaitWithTimeout(absl::Condition(&matches), kWait);
  }
  std::vector<std::string> Lines() {
    absl::MutexLock lock(&mu_);
    return lines_;
  }
  std::string health() {
    absl::MutexLock lock(&mu_);
    return health_;
  }
  void SetDeadline(absl::Time t) {
    absl::MutexLock lock(&mu_);
    deadline_ = t;
  }
  bool WaitForFired() {
    absl::MutexLock lock(&mu_);
    auto fired = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return fired_at_ != absl::InfinitePast();
    };
    return mu_.AwaitWithTimeout(absl::Condition(&fired), kWait);
  }
  absl::Time fired_at() {
    absl::MutexLock lock(&mu_);
    return fired_at_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> lines_ ABSL_GUARDED_BY(mu_);
  std::string health_ ABSL_GUARDED_BY(mu_) = "unset";
  absl::Time deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  absl::Time fired_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

class LogInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/lh-ptpin-XXXXXX");
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static UniqueFd Connect(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
    EXPECT_EQ(
        ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
        0)
        << path;
    return fd;
  }
  static void Write(int fd, absl::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::write(fd, data.data(), data.size());
      ASSERT_GT(n, 0);
      data.remove_prefix(static_cast<size_t>(n));
    }
  }
  void Append(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::app);
    out << text;
  }

  std::string dir_;
  Sink sink_;
};

TEST_F(LogInputTest, SocketTakesConcurrentWritersLineByLine) {
  LogInputOptions options;
  options.socket_path = dir_ + "/run/events.sock";  // parent made on demand
  auto input = LogInput::Start(options, sink_.Handler());
  ASSERT_THAT(input, IsOk());
  EXPECT_EQ(sink_.health(), "");
  constexpr int kWriters = 8;
  constexpr int kLines = 500;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      UniqueFd fd = Connect(options.socket_path);
      // Each line in two writes, so lines arrive split across reads.
      for (int i = 0; i < kLines; ++i) {
        std::string line = absl::StrCat("ptp4l[", i, ".000]: [ptp4l.", w,
                                        ".config] master offset ", i,
                                        " s2 freq -1 path delay 2\n");
        size_t half = line.size() / 2;
        Write(fd.get(), absl::string_view(line).substr(0, half));
        Write(fd.get(), absl::string_view(line).substr(half));
      }
    });
  }
  for (auto& t : writers) t.join();
  ASSERT_TRUE(sink_.WaitForLines(kWriters * kLines));
  // Every line whole, each writer's in its order.
  std::map<int, int> next;
  for (const std::string& line : sink_.Lines()) {
    int w = -1, i = -1;
    ASSERT_EQ(std::sscanf(line.c_str(),
                          "ptp4l[%*d.000]: [ptp4l.%d.config] master offset %d",
                          &w, &i),
              2)
        << line;
    EXPECT_EQ(line, absl::StrCat("ptp4l[", i, ".000]: [ptp4l.", w,
                                 ".config] master offset ", i,
                                 " s2 freq -1 path delay 2"));
    EXPECT_EQ(next[w]++, i);
  }
  EXPECT_EQ(next.size(), static_cast<size_t>(kWriters));
  (*input)->Stop();
  EXPECT_FALSE(std::filesystem::exists(options.socket_path));
}

TEST_F(LogInputTest, SocketControlLinesAndALastLineWithoutNewline) {
  LogInputOptions options;
  options.socket_path = dir_ + "/events.sock";
  auto input = LogInput::Start(options, sink_.Handler());
  ASSERT_THAT(input, IsOk());
  {
    UniqueFd fd = Connect(options.socket_path);
    Write(fd.get(),
          "CMD RESTART\nptp4l[1.000]: master offset 1 s2 freq 1 "
          "path delay 1\nCMD LIVE_START");
  }  // closed: the unterminated line counts
  ASSERT_TRUE(sink_.WaitForLines(3));
  EXPECT_THAT(sink_.Lines(),
              ElementsAre("CMD RESTART",
                          "ptp4l[1.000]: master offset 1 s2 freq 1 path "
                          "delay 1",
                          "CMD LIVE_START"));
}

TEST_F(LogInputTest, SocketPathThatCannotBeBoundIsAnError) {
  LogInputOptions options;
  options.socket_path = "/proc/lh-no-such-dir/events.sock";
  auto input = LogInput::Start(options, sink_.Handler());
  EXPECT_FALSE(input.ok());
  EXPECT_THAT(input.status().message(), HasSubstr("PTP_LOG_SOCKET="));
}

TEST_F(LogInputTest, OversizedLinesAreDropped) {
  LogInputOptions options;
  options.socket_path = dir_ + "/events.sock";
  options.max_line_bytes = 64;
  auto input = LogInput::Start(options, sink_.Handler());
  ASSERT_THAT(input, IsOk());
  UniqueFd fd = Connect(options.socket_path);
  Write(fd.get(), std::string(100, 'x') + "\nshort\n" + std::string(30, 'y'));
  Write(fd.get(), std::string(50, 'y') + "\nlast\n");
  ASSERT_TRUE(sink_.WaitForLines(2));
  EXPECT_THAT(sink_.Lines(), ElementsAre("short", "last"));
}

TEST_F(LogInputTest, FileFollowsAppendsRotationAndTruncation) {
  std::string path = dir_ + "/ptp.log";
  Append(path, "old line before start\n");
  LogInputOptions options;
  options.file_path = path;
  auto input = LogInput::Start(options, sink_.Handler());
  ASSERT_THAT(input, IsOk());
  ASSERT_TRUE(sink_.WaitForHealth(""));
  // First run without a saved position: from the end, like tail -F.
  Append(path, "one\ntw");
  Append(path, "o\n");
  ASSERT_TRUE(sink_.WaitForLines(2));
  // Rotation: the old file gets one more line, then a new file appears.
  std::filesystem::rename(path, path + ".1");
  Append(path + ".1", "three\n");
  Append(path, "four is longer\n");
  ASSERT_TRUE(sink_.WaitForLines(4));
  // Truncation (copytruncate or `> file`), then new content (shorter than
  // what was read, so the truncation shows even if both land together).
  { std::ofstream truncate(path, std::ios::trunc); }
  Append(path, "five\n");
  ASSERT_TRUE(sink_.WaitForLines(5));
  // Deleted, then created again.
  std::filesystem::remove(path);
  Append(path, "six\n");
  ASSERT_TRUE(sink_.WaitForLines(6));
  EXPECT_THAT(sink_.Lines(), ElementsAre("one", "two", "three",
                                         "four is longer", "five", "six"));
}

TEST_F(LogInputTest, MissingFileIsWaitedFor) {
  std::string path = dir_ + "/later.log";
  LogInputOptions options;
  options.file_path = path;
  auto input = LogInput::Start(options, sink_.Handler());
  ASSERT_THAT(input, IsOk());
  ASSERT_TRUE(sink_.WaitForHealth("PTP_LOG_FILE=" + path));
  Append(path, "first\n");  // a new file is read from its start
  ASSERT_TRUE(sink_.WaitForLines(1));
  EXPECT_TRUE(sink_.WaitForHealth(""));
  EXPECT_THAT(sink_.Lines(), ElementsAre("first"));
}

TEST_F(LogInputTest, FileResumesFromTheSavedPosition) {
  std::string path = dir_ + "/ptp.log";
  LogInputOptions options;
  options.file_path = path;
  options.position_path = dir_ + "/position.json";
  Append(path, "history\n");
  {
    auto input = LogInput::Start(options, sink_.Handler());
    ASSERT_THAT(input, IsOk());
    ASSERT_TRUE(sink_.WaitForHealth(""));
    Append(path, "a\n");
    ASSERT_TRUE(sink_.WaitForLines(1));
  }                        // stopped: the position is saved
  Append(path, "b\nc\n");  // written while the monitor was down
  Sink second;
  auto input = LogInput::Start(options, second.Handler());
  ASSERT_THAT(input, IsOk());
  ASSERT_TRUE(second.WaitForLines(2));
  EXPECT_THAT(second.Lines(), ElementsAre("b", "c"));
}

TEST_F(LogInputTest, DeadlineFiresWithoutLines) {
  LogInputOptions options;
  options.socket_path = dir_ + "/events.sock";
  auto input = LogInput::Start(options, sink_.Handler());
  ASSERT_THAT(input, IsOk());
  absl::Time deadline = absl::Now() + absl::Milliseconds(50);
  sink_.SetDeadline(deadline);
  (*input)->Wake();  // the thread re-reads the deadline
  ASSERT_TRUE(sink_.WaitForFired());
  EXPECT_GE(sink_.fired_at(), deadline);
  EXPECT_THAT(sink_.Lines(), IsEmpty());
}

TEST_F(LogInputTest, StdinPipe) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  int saved = ::dup(0);
  ASSERT_EQ(::dup2(fds[0], 0), 0);
  ::close(fds[0]);
  LogInputOptions options;
  options.file_path = "-";
  auto input = LogInput::Start(options, sink_.Handler());
  ::dup2(saved, 0);  // LogInput has its own copy
  ::close(saved);
  ASSERT_THAT(input, IsOk());
  Write(fds[1], "x\ny\n");
  ::close(fds[1]);
  ASSERT_TRUE(sink_.WaitForLines(2));
  EXPECT_TRUE(sink_.WaitForHealth("PTP_LOG_FILE=-: end of input"));
  EXPECT_THAT(sink_.Lines(), ElementsAre("x", "y"));
}

}  // namespace
}  // namespace loophost::loops::ptp
