// OperatorServer: the host's operator endpoints on LOOPHOST_METRICS_ADDR:
// /metrics (host + plugins merged), /discovery (Prometheus http_sd),
// /plugins/<name>/metrics, /plugins, /health, /healthz, /readyz. It borrows the
// PluginDirectory and HostMetrics, which must outlive it. Start/Stop are called
// by the owner (not concurrently with each other); the handlers run on the
// server's own thread pool.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/env_parse.h"
#include "host/host_metrics.h"
#include "host/plugin_status.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace loophost::host {

struct OperatorServerOptions {
  HostPort listen;  // from LOOPHOST_METRICS_ADDR; port 0 = kernel picks
  absl::Duration scrape_timeout = absl::Seconds(2);
  // NODE_NAME: added as label `node` to every /discovery group when not empty.
  std::string node_name = {};
};

class OperatorServer {
 public:
  OperatorServer(OperatorServerOptions options, const PluginDirectory& plugins,
                 HostMetrics& metrics);
  ~OperatorServer();  // Stop()
  OperatorServer(const OperatorServer&) = delete;
  OperatorServer& operator=(const OperatorServer&) = delete;

  // Binds (the error names the address and the errno text) and serves on its
  // own threads.
  absl::Status Start();
  uint16_t port() const;  // the bound port; 0 before Start()
  // Stops accepting, finishes the requests in flight and joins the threads.
  // Idempotent.
  void Stop();

 private:
  struct Scrape {
    std::string body;
    std::string content_type;
  };
  // GET http://127.0.0.1:<port>/metrics within options_.scrape_timeout.
  absl::StatusOr<Scrape> ScrapePlugin(uint16_t port) const;

  void HandleMetrics(const httplib::Request& req, httplib::Response& res);
  void HandleDiscovery(const httplib::Request& req,
                       httplib::Response& res) const;
  void HandlePluginMetrics(const httplib::Request& req, httplib::Response& res);
  void HandlePlugins(httplib::Response& res) const;
  void HandleHealth(const httplib::Request& req, httplib::Response& res) const;
  void HandleReadyz(httplib::Response& res) const;

  // True the first time `key` is seen (up to a bound): a plugin that keeps
  // failing or serving a bad exposition is logged at warn once, not at every
  // scrape.
  bool FirstTime(std::string key);

  const OperatorServerOptions options_;
  const PluginDirectory& plugins_;
  HostMetrics& metrics_;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;

  absl::Mutex mu_;
  std::set<std::string> logged_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loophost::host
