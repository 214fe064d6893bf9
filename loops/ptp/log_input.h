// LogInput: where the PTP monitor's log lines come from, read on one thread of
// its own that sleeps in epoll_wait while nothing arrives (no polling):
//  - a unix stream socket it listens on, as linuxptp-daemon writes to it; any
//    number of writers at once, each connection split into lines separately;
//  - a file it follows like `tail -F`, across rotation (rename + create) and
//    truncation, woken by inotify; "-" reads stdin.
// The same thread fires the handler's timer (the holdover deadline) as the
// epoll timeout. Stop() (or the destructor) ends and joins the thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace loophost::loops::ptp {

struct LogInputOptions {
  // Exactly one: follow `file_path` ("-" = stdin) if set, else listen on
  // `socket_path`.
  std::string socket_path;
  std::string file_path;
  // Where the file follower keeps (device, inode, offset) so that a restart
  // resumes where it stopped; "" = start at the file's end.
  std::string position_path;
  size_t max_line_bytes = 64 * 1024;
};

struct LogInputHandler {
  // The complete lines of one read, in order; valid during the call only.
  std::function<void(const std::vector<absl::string_view>& lines)> on_lines;
  // The next time on_deadline should run; InfiniteFuture = none.
  std::function<absl::Time()> next_deadline;
  std::function<void(absl::Time now)> on_deadline;
  // The input's health: "" = fine, else what is wrong. Called on changes.
  std::function<void(const std::string& error)> on_health;
};

class LogInput {
 public:
  // Binds the socket (an error if it cannot) or opens the file (a missing
  // file is waited for, reported through on_health), then starts the thread.
  static absl::StatusOr<std::unique_ptr<LogInput>> Start(
      LogInputOptions options, LogInputHandler handler);
  ~LogInput();
  LogInput(const LogInput&) = delete;
  LogInput& operator=(const LogInput&) = delete;

  // Ends the thread (closing connections; the file position is saved).
  void Stop();
  // Wakes the thread to recompute its timer (after the deadline changed from
  // another thread).
  void Wake();

  class Source;

 private:
  LogInput(LogInputOptions options, LogInputHandler handler);
  absl::Status Init();
  void Run();

  LogInputOptions options_;
  LogInputHandler handler_;
  UniqueFd epoll_;
  UniqueFd wake_;      // eventfd
  bool stop_ = false;  // written and read on the thread only
  std::unique_ptr<Source> source_;
  std::thread thread_;
};

}  // namespace loophost::loops::ptp
