// WalCheckpointer: copies an SQLite database's write-ahead log back into the
// database on its own thread and its own connection, so that the connection
// that commits (the router's and the dispatcher's) never waits for a
// checkpoint and its fsync. The committing connection's WAL hook calls
// Committed() with the log's size; past the threshold the thread runs a
// PASSIVE checkpoint (it never blocks readers or writers). With nothing
// committed the thread sleeps without a timer.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace loophost::host {

class WalCheckpointer {
 public:
  // Opens a second connection to the database at `path` (already in WAL
  // mode) and starts the thread. `threshold_pages`: SQLite's own automatic
  // checkpoint starts at 1000.
  static absl::StatusOr<std::unique_ptr<WalCheckpointer>> Start(
      const std::string& path, int threshold_pages = 1000);
  // Stops the thread (after the checkpoint in progress) and closes its
  // connection.
  ~WalCheckpointer();
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Installs Committed() as `db`'s WAL hook; this replaces SQLite's automatic
  // checkpoint on that connection. The checkpointer must outlive `db`'s use.
  void HookInto(sqlite3* db);
  // A commit left `wal_pages` pages in the log: wakes the thread if that is at
  // or past the threshold, and says whether it did.
  bool Committed(int wal_pages);
  // Checkpoints run so far.
  uint64_t checkpoints() const;

 private:
  WalCheckpointer(sqlite3* db, int threshold_pages);
  void Run();

  sqlite3* const db_;  // the thread's own connection
  const int threshold_pages_;
  mutable absl::Mutex mu_;
  bool wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t checkpoints_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace loophost::host
