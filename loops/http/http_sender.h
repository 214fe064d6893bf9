// HttpSender: the HTTP transport's engine. POSTs bodies to http(s) endpoints
// with Boost.Beast over Asio on one worker thread, which sleeps in epoll_wait
// while there is nothing to do (no timer runs while idle). Connections are
// kept alive per origin (scheme, host, port) and reused; a slow or dead
// endpoint holds only its own connections. At most max_in_flight requests run
// at once; the rest wait in FIFO order.
// Thread-safe: Post() from any thread; callbacks run on the worker thread and
// must not block.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "loops/http/http_url.h"

namespace loophost::loops::http {

struct HttpPost {
  std::string url;
  std::string body;
  std::string content_type;  // "" = application/json
  absl::Duration timeout;    // <= 0: the sender's default
};

enum class HttpOutcome {
  kDelivered,       // 2xx
  kHttpStatus,      // an answer, not 2xx
  kTimeout,         // no complete answer within the timeout
  kConnectFailed,   // refused, unreachable, name not resolved
  kConnectionLost,  // reset or closed before a complete answer
  kFailed,          // anything else (bad URL, TLS, bad answer, stopped, ...)
};

struct HttpPostResult {
  HttpOutcome outcome = HttpOutcome::kFailed;
  int http_status = 0;         // 0 = no answer
  std::string error;           // "" when delivered
  absl::Duration latency;      // Post() -> result, queueing included
  int connections_opened = 0;  // 0 = it reused a kept-alive connection
};

struct HttpSenderOptions {
  int max_in_flight = 256;
  absl::Duration default_timeout = absl::Seconds(2);
  // Connections at once to one origin; 0 = no limit. Requests over it wait
  // for one of that origin's connections, not in front of other origins.
  int max_host_connections = 0;
  // Idle connections kept for reuse, least recently used closed first; 0 =
  // max(4096, max_in_flight).
  int max_idle_connections = 0;
  // PEM file of the CAs that https endpoints' certificates must chain to;
  // "" = the system's trust store.
  std::string ca_file;
  // Called on a watchdog thread when the worker has had work but has not come
  // round its loop for stall_after ("" = healthy again). Optional.
  std::function<void(const std::string& error)> on_health;
  absl::Duration stall_after = absl::Seconds(5);
};

class HttpSender {
 public:
  using Callback = absl::AnyInvocable<void(HttpPostResult)>;

  static absl::StatusOr<std::unique_ptr<HttpSender>> Start(
      HttpSenderOptions options);
  HttpSender(const HttpSender&) = delete;
  HttpSender& operator=(const HttpSender&) = delete;
  // Stop().
  ~HttpSender();

  struct Request {
    HttpPost post;
    Callback done;
  };

  // Queues one POST; `done` is called exactly once (after Stop(): at once,
  // with kFailed).
  void Post(HttpPost post, Callback done);
  // Queues several, in order, with one wakeup of the worker.
  void PostAll(std::vector<Request> requests);

  // Ends the worker: requests still queued or in flight complete with kFailed
  // "transport stopped". Idempotent.
  void Stop();

  struct Stats {
    int in_flight = 0;
    int queued = 0;
    int64_t connections_opened = 0;
  };
  Stats GetStats() const;

  const HttpSenderOptions& options() const { return options_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    HttpPost post;
    Callback done;
    Clock::time_point posted_at;
  };
  class Engine;  // the worker's Asio state (http_sender.cc)

  explicit HttpSender(HttpSenderOptions options);
  void Watchdog();
  // Worker: takes what was submitted; publishes its counts.
  std::vector<Pending> TakeSubmitted();
  void Publish(int in_flight, int queued, int64_t opened);

  const HttpSenderOptions options_;
  std::unique_ptr<Engine> engine_;

  mutable absl::Mutex mu_;
  std::vector<Pending> submitted_ ABSL_GUARDED_BY(mu_);
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Published by the worker as they change, for GetStats and the watchdog.
  int published_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int published_queued_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t connections_opened_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_turn_ ABSL_GUARDED_BY(mu_);

  std::thread worker_;
  std::thread watchdog_;
  std::once_flag stop_once_;
};

}  // namespace loophost::loops::http
