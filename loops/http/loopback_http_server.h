// LoopbackHttpServer: a real HTTP subscriber for tests and the benchmark: a
// cpp-httplib server (http, or https with a given certificate) on 127.0.0.1:0
// (the kernel picks the port) on its own thread. It records what it received,
// counts distinct client connections (by client port) and the most requests it
// ever ran at once, and can hold requests (answer none until Release) to play a
// slow or hung subscriber. Thread-safe. The destructor releases held requests
// and joins the thread. Destroy (or stop) the client first: cpp-httplib waits
// out each idle keep-alive connection (up to 60 s here) before its server
// stops.
#pragma once

#include <httplib.h>

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace loophost::loops::http {

class LoopbackHttpServer {
 public:
  struct Received {
    std::string path;
    std::string body;
    std::string content_type;
    int client_port = 0;
    std::chrono::steady_clock::time_point at;
  };

  // `record`: keep every request (tests); the benchmark turns it off and
  // uses on_request instead.
  explicit LoopbackHttpServer(int status = 204, bool record = true)
      : LoopbackHttpServer(std::make_unique<httplib::Server>(), status,
                           record) {}

  // An https server with the certificate and key in these PEM files.
  static std::unique_ptr<LoopbackHttpServer> Tls(const std::string& cert_pem,
                                                 const std::string& key_pem,
                                                 int status = 204) {
    return std::unique_ptr<LoopbackHttpServer>(new LoopbackHttpServer(
        std::make_unique<httplib::SSLServer>(cert_pem.c_str(), key_pem.c_str()),
        status, true, "https"));
  }

  LoopbackHttpServer(const LoopbackHttpServer&) = delete;
  LoopbackHttpServer& operator=(const LoopbackHttpServer&) = delete;

  ~LoopbackHttpServer() {
    Release();
    // stop() is a no-op until listen_after_bind has begun; repeat it until
    // the listener has returned (at once, unless it had not started).
    do {
      server_->stop();
    } while (!stopped_.WaitForNotificationWithTimeout(absl::Milliseconds(50)));
    thread_.join();
  }

  int port() const { return port_; }
  std::string Url(absl::string_view path = "/") const {
    return absl::StrCat(scheme_, "://127.0.0.1:", port_, path);
  }

  void set_status(int status) {
    absl::MutexLock lock(&mu_);
    status_ = status;
  }
  // Called for every request, on the server's thread, before it answers.
  void set_on_request(std::function<void(const httplib::Request&)> f) {
    absl::MutexLock lock(&mu_);
    on_request_ = std::move(f);
  }

  // From now on requests wait (inside the handler) until Release().
  void Hold() {
    absl::MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    held_ = false;
  }

  std::vector<Received> received() const {
    absl::MutexLock lock(&mu_);
    return received_;
  }
  int requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  // Requests running in the handler right now (held ones included).
  int active() const {
    absl::MutexLock lock(&mu_);
    return active_;
  }
  int connections() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(client_ports_.size());
  }
  int max_concurrent() const {
    absl::MutexLock lock(&mu_);
    return max_active_;
  }

  // Blocks until `n` requests arrived (held ones count) or `timeout` passed.
  bool WaitForRequests(int n, absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return requests_ >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  // Blocks until `n` requests are inside the handler at once.
  bool WaitForActive(int n, absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return active_ >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }

 private:
  LoopbackHttpServer(std::unique_ptr<httplib::Server> server, int status,
                     bool record, std::string scheme = "http")
      : server_(std::move(server)),
        scheme_(std::move(scheme)),
        status_(status),
        record_(record) {
    server_->set_keep_alive_max_count(1000000);
    server_->set_keep_alive_timeout(60);
    server_->Post(".*", [this](const httplib::Request& req,
                               httplib::Response& res) { Handle(req, res); });
    port_ = server_->bind_to_any_port("127.0.0.1");
    // The socket listens from here on: connections wait in its backlog until
    // the thread accepts them, so there is nothing to wait for.
    thread_ = std::thread([this] {
      server_->listen_after_bind();
      stopped_.Notify();
    });
  }

  void Handle(const httplib::Request& req, httplib::Response& res) {
    std::function<void(const httplib::Request&)> on_request;
    int status = 0;
    {
      absl::MutexLock lock(&mu_);
      ++requests_;
      ++active_;
      max_active_ = std::max(max_active_, active_);
      client_ports_.insert(req.remote_port);
      if (record_) {
        received_.push_back(
            {req.path, req.body, req.get_header_value("Content-Type"),
             req.remote_port, std::chrono::steady_clock::now()});
      }
      on_request = on_request_;
    }
    if (on_request) on_request(req);
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](bool* held) { return !*held; }, &held_));
      status = status_;
      --active_;
    }
    res.status = status;
  }

  std::unique_ptr<httplib::Server> server_;
  const std::string scheme_;
  int port_ = 0;
  std::thread thread_;
  absl::Notification stopped_;

  mutable absl::Mutex mu_;
  int status_ ABSL_GUARDED_BY(mu_);
  const bool record_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void(const httplib::Request&)> on_request_ ABSL_GUARDED_BY(mu_);
  std::vector<Received> received_ ABSL_GUARDED_BY(mu_);
  std::set<int> client_ports_ ABSL_GUARDED_BY(mu_);
  int requests_ ABSL_GUARDED_BY(mu_) = 0;
  int active_ ABSL_GUARDED_BY(mu_) = 0;
  int max_active_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace loophost::loops::http
