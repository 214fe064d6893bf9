// WalCheckpointer on a real SQLite database in WAL mode: commits past the
// threshold get checkpointed on the checkpointer's thread (the database file
// grows), only a log at the threshold wakes it, and the committing connection
// no longer checkpoints by itself.
#include "host/wal_checkpointer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "tests/testing/child_process.h"

namespace loophost::host {
namespace {

using ::loophost::testing::IsOk;
using ::loophost::testing::TempDir;
using ::loophost::testing::WaitFor;

int64_t FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

class WalCheckpointerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = TempDir::Create("lh-wal-");
    ASSERT_THAT(dir, IsOk());
    dir_ = std::make_unique<TempDir>(std::move(*dir));
    path_ = dir_->Join("test.db");
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db_), SQLITE_OK);
    Exec("PRAGMA journal_mode=WAL");
    Exec("PRAGMA synchronous=NORMAL");
    Exec("CREATE TABLE t (v BLOB)");
  }
  void TearDown() override {
    checkpointer_.reset();
    sqlite3_close_v2(db_);
  }

  void Exec(const std::string& sql) {
    char* error = nullptr;
    ASSERT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error),
              SQLITE_OK)
        << (error != nullptr ? error : "");
    sqlite3_free(error);
  }

  // One commit of `rows` rows of 4 KB (about a page each).
  void Insert(int rows) {
    Exec("BEGIN");
    for (int i = 0; i < rows; ++i) {
      Exec("INSERT INTO t (v) VALUES (zeroblob(4000))");
    }
    Exec("COMMIT");
  }

  // Starts the checkpointer and makes it db_'s WAL hook.
  void StartCheckpointer(int threshold_pages) {
    auto started = WalCheckpointer::Start(path_, threshold_pages);
    ASSERT_THAT(started, IsOk());
    checkpointer_ = std::move(*started);
    checkpointer_->HookInto(db_);
  }

  std::unique_ptr<TempDir> dir_;
  std::string path_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<WalCheckpointer> checkpointer_;
};

TEST_F(WalCheckpointerTest, CheckpointsOnItsThreadPastTheThreshold) {
  StartCheckpointer(50);
  const int64_t before = FileSize(path_);
  Insert(100);  // about 100 pages in the log: past the threshold
  ASSERT_TRUE(WaitFor([&] { return checkpointer_->checkpoints() >= 1; },
                      absl::Seconds(10), "a checkpoint"));
  // The pages moved into the database file.
  EXPECT_GT(FileSize(path_), before + 50 * 4000);
}

TEST_F(WalCheckpointerTest, OnlyALogAtTheThresholdWakesTheThread) {
  StartCheckpointer(50);
  EXPECT_FALSE(checkpointer_->Committed(49));
  EXPECT_TRUE(checkpointer_->Committed(50));
  EXPECT_TRUE(checkpointer_->Committed(51));
}

TEST_F(WalCheckpointerTest, TheHookReplacesTheCommittersOwnCheckpoint) {
  StartCheckpointer(1 << 30);  // never wakes
  const int64_t before = FileSize(path_);
  // Past SQLite's automatic checkpoint (1000 pages), which would run inside
  // this COMMIT and grow the database file, had the hook not replaced it.
  Insert(1100);
  EXPECT_EQ(FileSize(path_), before);
  EXPECT_EQ(checkpointer_->checkpoints(), 0u);
}

TEST(WalCheckpointerStartTest, AMissingDatabaseIsAnError) {
  auto started = WalCheckpointer::Start("/nonexistent/dir/test.db");
  EXPECT_FALSE(started.ok());
  EXPECT_THAT(std::string(started.status().message()),
              ::testing::HasSubstr("cannot open the database to checkpoint"));
}

}  // namespace
}  // namespace loophost::host
