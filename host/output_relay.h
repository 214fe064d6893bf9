// OutputRelay: one thread (epoll) that drains every plugin's stdout and stderr
// all the time, so a plugin never blocks on a full pipe, and hands each line
// to the stream's handler. It owns the watched fds and its thread; all methods
// are thread-safe. Handlers run on the relay thread, one line at a time; they
// must not block on a thread that is calling Unwatch() for their stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

namespace loophost::host {

class OutputRelay {
 public:
  using LineHandler = std::function<void(absl::string_view line)>;

  // A line longer than this is cut here; the rest, up to the next '\n', is
  // dropped and counted ("…[truncated N bytes]"). Bounds memory per stream.
  static constexpr size_t kMaxLineBytes = 16 * 1024;

  OutputRelay();
  ~OutputRelay();  // stops and joins the thread; closes every watched fd
  OutputRelay(const OutputRelay&) = delete;
  OutputRelay& operator=(const OutputRelay&) = delete;

  // Takes ownership of fd (made non-blocking). Lines are split on '\n'; a
  // final line without one is delivered at EOF. The stream is removed (fd
  // closed) on EOF, read error or Unwatch. Returns a token for Unwatch.
  uint64_t Watch(UniqueFd fd, LineHandler handler);

  // Stops watching and closes the fd. After it returns, the handler is never
  // called again (if called from that handler, once the current line's call
  // returns). Unknown or finished tokens are ignored.
  void Unwatch(uint64_t token);

  // Blocks until the stream reached EOF or was unwatched, or `timeout`
  // passed; true if it is done.
  bool WaitForEof(uint64_t token, absl::Duration timeout);

 private:
  struct Stream;

  void Run();
  // Reads what is available; false when the stream reached EOF or an error.
  bool Drain(Stream& stream);
  // Hands the current line (with its truncation marker) to the handler.
  void EndLine(Stream& stream);
  // Removes the stream from the map and epoll; the caller destroys it after
  // unlocking (its handler may own things whose destructors take locks).
  std::unique_ptr<Stream> RemoveLocked(uint64_t token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  UniqueFd epoll_fd_;
  UniqueFd wake_fd_;         // eventfd: stop request
  std::string read_buffer_;  // relay thread only

  absl::Mutex mu_;
  std::map<uint64_t, std::unique_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  uint64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t dispatching_ ABSL_GUARDED_BY(mu_) = 0;  // stream being drained
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread thread_;  // last: starts after the members above exist
};

}  // namespace loophost::host
