// Implementation of WalCheckpointer (wal_checkpointer.h).
#include "host/wal_checkpointer.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/thread_name.h"

namespace loophost::host {
namespace {

int OnCommit(void* self, sqlite3* /*db*/, const char* /*name*/, int pages) {
  (void)static_cast<WalCheckpointer*>(self)->Committed(pages);
  return SQLITE_OK;
}

}  // namespace

absl::StatusOr<std::unique_ptr<WalCheckpointer>> WalCheckpointer::Start(
    const std::string& path, int threshold_pages) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string why = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close_v2(db);
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": cannot open the database to checkpoint: ", why));
  }
  // The connection learns that the database is in WAL mode only once it has
  // read it; before that a checkpoint does nothing.
  if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr) !=
      SQLITE_OK) {
    std::string why = sqlite3_errmsg(db);
    sqlite3_close_v2(db);
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": cannot read the database to checkpoint: ", why));
  }
  // Never checkpoints on its own commits (it makes none) nor on close.
  sqlite3_wal_autocheckpoint(db, 0);
  sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);
  return std::unique_ptr<WalCheckpointer>(
      new WalCheckpointer(db, threshold_pages));
}

WalCheckpointer::WalCheckpointer(sqlite3* db, int threshold_pages)
    : db_(db), threshold_pages_(threshold_pages) {
  thread_ = std::thread([this] {
    NameThisThread("lh-checkpoint");
    Run();
  });
}

WalCheckpointer::~WalCheckpointer() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
  sqlite3_close_v2(db_);
}

void WalCheckpointer::HookInto(sqlite3* db) {
  sqlite3_wal_hook(db, &OnCommit, this);
}

bool WalCheckpointer::Committed(int wal_pages) {
  if (wal_pages < threshold_pages_) return false;
  absl::MutexLock lock(&mu_);
  wanted_ = true;
  return true;
}

uint64_t WalCheckpointer::checkpoints() const {
  absl::MutexLock lock(&mu_);
  return checkpoints_;
}

void WalCheckpointer::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto woken = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return wanted_ || stop_;
      };
      mu_.Await(absl::Condition(&woken));
      if (stop_) return;
      wanted_ = false;
    }
    int log_pages = 0, done_pages = 0;
    const int rc = sqlite3_wal_checkpoint_v2(
        db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_pages, &done_pages);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      LogWarn("database checkpoint failed",
              {{"error", sqlite3_errmsg(db_)},
               {"wal_pages", absl::StrCat(log_pages)}});
    }
    absl::MutexLock lock(&mu_);
    ++checkpoints_;
  }
}

}  // namespace loophost::host
