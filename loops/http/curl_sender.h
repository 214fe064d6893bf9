// CurlSender: the HTTP transport's engine. POSTs bodies to http(s) endpoints
// with libcurl's multi socket interface on one worker thread that sleeps in
// epoll_wait (no timers, no wakeups while idle). Each request is its own
// easy handle, so a slow or dead endpoint holds only its own slot; keep-alive
// connections stay in the multi handle's cache and are reused. At most
// max_in_flight requests run at once; the rest wait in FIFO order.
// Thread-safe: Post() from any thread; callbacks run on the worker thread and
// must not block.
#pragma once

#include <curl/curl.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"

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
  kFailed,          // anything else (bad URL, stopped, ...)
};

struct HttpPostResult {
  HttpOutcome outcome = HttpOutcome::kFailed;
  int http_status = 0;         // 0 = no answer
  std::string error;           // "" when delivered
  absl::Duration latency;      // Post() -> result, queueing included
  int connections_opened = 0;  // 0 = it reused a kept-alive connection
};

struct CurlSenderOptions {
  int max_in_flight = 256;
  absl::Duration default_timeout = absl::Seconds(2);
  // Connections at once to one host:port (CURLMOPT_MAX_HOST_CONNECTIONS);
  // 0 = no limit. Requests over it wait inside libcurl, not in front of
  // other hosts.
  int max_host_connections = 0;
  // Idle connections kept for reuse (CURLMOPT_MAXCONNECTS); 0 = max(4096,
  // max_in_flight).
  int max_idle_connections = 0;
  // Called on a watchdog thread when the worker has had work but has not come
  // round its loop for stall_after ("" = healthy again). Optional.
  std::function<void(const std::string& error)> on_health;
  absl::Duration stall_after = absl::Seconds(5);
};

// Checks that `url` parses as an absolute http:// or https:// URL; the error
// names the URL and why.
absl::Status CheckHttpUrl(absl::string_view url);

class CurlSender {
 public:
  using Callback = absl::AnyInvocable<void(HttpPostResult)>;

  static absl::StatusOr<std::unique_ptr<CurlSender>> Start(
      CurlSenderOptions options);
  CurlSender(const CurlSender&) = delete;
  CurlSender& operator=(const CurlSender&) = delete;
  // Stop().
  ~CurlSender();

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

  const CurlSenderOptions& options() const { return options_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    HttpPost post;
    Callback done;
    Clock::time_point posted_at;
  };
  struct Transfer;

  explicit CurlSender(CurlSenderOptions options);
  absl::Status Init();
  void Run();
  void Wake();  // the worker's eventfd
  // libcurl's socket and timer callbacks (worker thread).
  static int OnSocket(CURL* easy, curl_socket_t socket, int what, void* self,
                      void* socketp);
  static int OnTimer(CURLM* multi, long timeout_ms,  // NOLINT(runtime/int)
                     void* self);
  void Watchdog();
  void StartTransfers();
  void FinishTransfers();
  void Complete(Transfer& transfer, CURLcode code);
  void FailAll(const std::string& why);
  curl_slist* HeadersFor(const std::string& content_type);

  const CurlSenderOptions options_;
  CURLM* multi_ = nullptr;
  UniqueFd epoll_;
  UniqueFd wake_fd_;

  // Worker-only state.
  std::set<curl_socket_t> watched_;                         // in the epoll set
  Clock::time_point timer_due_ = Clock::time_point::max();  // libcurl's timer
  std::deque<Pending> queue_;
  std::vector<std::unique_ptr<Transfer>> transfers_;  // every one made
  std::vector<Transfer*> idle_transfers_;             // not in flight
  int in_flight_ = 0;
  std::map<std::string, curl_slist*> headers_;

  mutable absl::Mutex mu_;
  std::vector<Pending> submitted_ ABSL_GUARDED_BY(mu_);
  bool wake_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Published by the worker each turn, for GetStats and the watchdog.
  int published_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int published_queued_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t connections_opened_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_turn_ ABSL_GUARDED_BY(mu_);

  std::thread worker_;
  std::thread watchdog_;
  std::once_flag stop_once_;
};

}  // namespace loophost::loops::http
