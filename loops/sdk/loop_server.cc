// Implementation of loop_server.h. Every service uses gRPC's callback API: no
// sync-server thread pool to start, and a unary call runs without a thread hop
// to a worker.
#include "loops/sdk/loop_server.h"

#include <dirent.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>
#include <grpcpp/support/server_callback.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdlib>
#include <exception>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/env_parse.h"
#include "common/status_macros.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "loophost/v1/plugin.grpc.pb.h"
#include "plugin/grpc_controller.grpc.pb.h"

namespace loophost::sdk {

namespace {

// How long in-flight calls get when the server stops.
constexpr absl::Duration kShutdownGrace = absl::Seconds(1);

// civetweb (the exposer's HTTP server) notices a stop only when its accept
// loop's poll() times out, a second later. Shutting its listening socket down
// first makes that poll() return at once, so the exposer stops in
// microseconds. The socket is found as the listening one bound to `port`.
void WakeExposer(int port) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (const dirent* entry = ::readdir(dir)) {
    int fd = std::atoi(entry->d_name);
    if (fd <= STDERR_FILENO || fd == ::dirfd(dir)) continue;
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 ||
        listening == 0) {
      continue;
    }
    sockaddr_storage addr{};
    len = sizeof(addr);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      continue;
    }
    int bound_port = -1;
    if (addr.ss_family == AF_INET) {
      bound_port = ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
    } else if (addr.ss_family == AF_INET6) {
      bound_port = ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
    }
    if (bound_port == port) ::shutdown(fd, SHUT_RDWR);
  }
  ::closedir(dir);
}

}  // namespace

// One WatchHealth call: writes the report it is given, coalescing reports that
// arrive while a write is in flight into the latest one. It deletes itself in
// OnDone, after leaving HealthWatchers. StartWrite/Finish are called without
// its own mutex held.
class WatchHealthReactor
    : public grpc::ServerWriteReactor<v1::HealthReportResponse> {
 public:
  // Joins `watchers`, which queues the current report as the first message.
  WatchHealthReactor(HealthWatchers& watchers, const HealthChecks& health);

  // Queues `report` unless it equals the last one queued.
  void Push(const std::map<std::string, std::string>& report);
  // Ends the stream with OK (after the write in flight, if any).
  void Close();

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Starts the next write or the pending finish. Called without mu_ held.
  void Drive();

  HealthWatchers& watchers_;
  absl::Mutex mu_;
  std::map<std::string, std::string> last_ ABSL_GUARDED_BY(mu_);
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;  // a report was queued
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  v1::HealthReportResponse message_;  // owned by the write in flight
};

// The open WatchHealth streams, fed by LoopServer's health thread. Every report
// is read under mu_, so a stream that joins while a change is broadcast gets
// that change either way and never an older report after a newer one. Once
// closed (at shutdown) it ends every stream and refuses new ones, so no stream
// holds the server open. Push/Close run under mu_ and may start a write or
// finish: that is safe because gRPC never runs a reaction (here OnDone, which
// takes mu_) inline in StartWrite/Finish; it runs them on its own threads.
class HealthWatchers {
 public:
  // False when closed: the caller finishes the stream itself.
  bool Add(WatchHealthReactor* reactor, const HealthChecks& health) {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    reactors_.insert(reactor);
    reactor->Push(health.Report());
    return true;
  }
  void Remove(WatchHealthReactor* reactor) {
    absl::MutexLock lock(&mu_);
    reactors_.erase(reactor);
  }
  void Broadcast(const HealthChecks& health) {
    absl::MutexLock lock(&mu_);
    const std::map<std::string, std::string> report = health.Report();
    for (WatchHealthReactor* r : reactors_) r->Push(report);
  }
  void CloseAll() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    for (WatchHealthReactor* r : reactors_) r->Close();
  }
  // Waits until every stream is done, so that shutting the server down does
  // not cut off the OK status of a stream that CloseAll finished.
  void WaitAllDone(absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto all_done = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return reactors_.empty();
    };
    mu_.AwaitWithDeadline(absl::Condition(&all_done), deadline);
  }

 private:
  absl::Mutex mu_;
  // A reactor removes itself (under mu_) before it is deleted.
  absl::flat_hash_set<WatchHealthReactor*> reactors_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

WatchHealthReactor::WatchHealthReactor(HealthWatchers& watchers,
                                       const HealthChecks& health)
    : watchers_(watchers) {
  if (!watchers_.Add(this, health)) Close();
}

void WatchHealthReactor::Push(
    const std::map<std::string, std::string>& report) {
  {
    absl::MutexLock lock(&mu_);
    if (finish_requested_ || (sent_any_ && report == last_)) return;
    sent_any_ = true;
    last_ = report;
    has_pending_ = true;
  }
  Drive();
}

void WatchHealthReactor::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (finish_requested_) return;
    finish_requested_ = true;
    finish_status_ = grpc::Status::OK;
    has_pending_ = false;
  }
  Drive();
}

void WatchHealthReactor::OnWriteDone(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok && !finish_requested_) {
      finish_requested_ = true;
      finish_status_ =
          grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
    }
  }
  Drive();
}

void WatchHealthReactor::OnCancel() {
  {
    absl::MutexLock lock(&mu_);
    if (finish_requested_) return;
    finish_requested_ = true;
    finish_status_ = grpc::Status::CANCELLED;
    has_pending_ = false;
  }
  Drive();
}

void WatchHealthReactor::OnDone() {
  watchers_.Remove(this);
  delete this;
}

void WatchHealthReactor::Drive() {
  enum { kNothing, kWrite, kFinish } action = kNothing;
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_) return;
    if (has_pending_ && !finish_requested_) {
      has_pending_ = false;
      writing_ = true;
      message_.mutable_checks()->clear();
      message_.mutable_checks()->insert(last_.begin(), last_.end());
      action = kWrite;
    } else if (finish_requested_) {
      finished_ = true;
      status = finish_status_;
      action = kFinish;
    }
  }
  if (action == kWrite) StartWrite(&message_);
  if (action == kFinish) Finish(status);
}

class PluginService final : public v1::Plugin::CallbackService {
 public:
  PluginService(const Loop& loop, HealthChecks& health,
                HealthWatchers& watchers)
      : health_(health), watchers_(watchers) {
    describe_.set_name(loop.Name());
    describe_.set_version(loop.Version());
    for (const std::string& kind : loop.Kinds()) describe_.add_kinds(kind);
  }

  grpc::ServerUnaryReactor* Describe(grpc::CallbackServerContext* context,
                                     const v1::DescribeRequest*,
                                     v1::DescribeResponse* response) override {
    *response = describe_;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerUnaryReactor* HealthReport(
      grpc::CallbackServerContext* context, const v1::HealthReportRequest*,
      v1::HealthReportResponse* response) override {
    std::map<std::string, std::string> report = health_.Report();
    response->mutable_checks()->insert(report.begin(), report.end());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerWriteReactor<v1::HealthReportResponse>* WatchHealth(
      grpc::CallbackServerContext*, const v1::WatchHealthRequest*) override {
    return new WatchHealthReactor(watchers_, health_);
  }

 private:
  v1::DescribeResponse describe_;
  HealthChecks& health_;
  HealthWatchers& watchers_;
};

// go-plugin's graceful stop: the answer goes out first, the shutdown request
// follows once the call is done.
class ControllerService final
    : public ::plugin::GRPCController::CallbackService {
 public:
  explicit ControllerService(LoopServer& server) : server_(server) {}

  grpc::ServerUnaryReactor* Shutdown(grpc::CallbackServerContext*,
                                     const ::plugin::Empty*,
                                     ::plugin::Empty*) override {
    class Reactor final : public grpc::ServerUnaryReactor {
     public:
      explicit Reactor(LoopServer& server) : server_(server) {
        Finish(grpc::Status::OK);
      }
      void OnDone() override {
        server_.RequestShutdown();
        delete this;
      }

     private:
      LoopServer& server_;
    };
    return new Reactor(server_);
  }

 private:
  LoopServer& server_;
};

LoopServer::LoopServer(std::unique_ptr<Loop> loop, LoopEnv env)
    : loop_(std::move(loop)),
      env_(std::move(env)),
      registry_(std::make_shared<prometheus::Registry>()),
      context_{env_, health_, *registry_} {}

absl::StatusOr<std::unique_ptr<LoopServer>> LoopServer::StartInProcess(
    std::unique_ptr<Loop> loop, LoopEnv env, const LoopServerOptions& options) {
  return StartOnUnixSocket(std::move(loop), std::move(env), "", options);
}

absl::StatusOr<std::unique_ptr<LoopServer>> LoopServer::StartOnUnixSocket(
    std::unique_ptr<Loop> loop, LoopEnv env, const std::string& socket_path,
    const LoopServerOptions& options) {
  if (loop == nullptr) return absl::InvalidArgumentError("no loop to serve");
  std::unique_ptr<LoopServer> server(
      new LoopServer(std::move(loop), std::move(env)));
  if (absl::Status s = server->Init(socket_path, options); !s.ok()) {
    server->RequestShutdown();
    server->Wait();
    return s;
  }
  return server;
}

absl::Status LoopServer::Init(const std::string& socket_path,
                              const LoopServerOptions& options) {
  const std::string name = loop_->Name();

  // Where the metrics go is checked before the loop starts any work.
  std::string metrics_address = options.metrics_address;
  if (metrics_address.empty()) {
    auto it = env_.find("LOOP_PROMETHEUS_PORT");
    if (it != env_.end() && !it->second.empty()) {
      LH_ASSIGN_OR_RETURN(int64_t port, ParseIntValue("LOOP_PROMETHEUS_PORT",
                                                      it->second, 0, 65535));
      if (port != 0) metrics_address = absl::StrCat("127.0.0.1:", port);
    }
  }

  if (absl::Status s = loop_->Start(context_); !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("loop ", name, ": start: ", s.message()));
  }
  loop_started_ = true;

  watchers_ = std::make_unique<HealthWatchers>();
  plugin_service_ =
      std::make_unique<PluginService>(*loop_, health_, *watchers_);
  controller_service_ = std::make_unique<ControllerService>(*this);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  // Only used if a loop brings a sync service: keep its thread pool minimal.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS,
                              1);
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(
      grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  if (!socket_path.empty()) {
    builder.AddListeningPort(absl::StrCat("unix:", socket_path),
                             grpc::InsecureServerCredentials());
  }
  builder.RegisterService(plugin_service_.get());
  builder.RegisterService(controller_service_.get());
  for (grpc::Service* service : loop_->Services()) {
    if (service != nullptr) builder.RegisterService(service);
  }
  server_ = builder.BuildAndStart();
  if (server_ == nullptr) {
    return socket_path.empty()
               ? absl::InternalError(
                     absl::StrCat("loop ", name, ": cannot build gRPC server"))
               : absl::UnavailableError(absl::StrCat(
                     "loop ", name, ": cannot listen on unix:", socket_path));
  }
  grpc::HealthCheckServiceInterface* health_service =
      server_->GetHealthCheckService();
  health_service->SetServingStatus("", true);
  health_service->SetServingStatus("plugin", true);

  // The version is read here, not in the thread: a change made before the
  // thread runs must still be broadcast.
  health_thread_ = std::thread(
      [this, seen = health_.version()] { WatchHealthChanges(seen); });

  if (!metrics_address.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(metrics_address, 1);
      exposer_->RegisterCollectable(registry_);
    } catch (const std::exception& e) {
      return absl::UnavailableError(absl::StrCat(
          "loop ", name, ": metrics on ", metrics_address, ": ", e.what()));
    }
  }
  return absl::OkStatus();
}

void LoopServer::WatchHealthChanges(uint64_t seen) {
  while (true) {
    seen = health_.WaitForChange(seen, absl::InfiniteFuture());
    if (health_.cancelled()) return;
    watchers_->Broadcast(health_);
  }
}

std::shared_ptr<grpc::Channel> LoopServer::InProcessChannel() {
  return server_->InProcessChannel(grpc::ChannelArguments());
}

void LoopServer::RequestShutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_requested_ = true;
}

bool LoopServer::shutdown_requested() const {
  absl::MutexLock lock(&mu_);
  return shutdown_requested_;
}

void LoopServer::Wait() {
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&shutdown_requested_));
  }
  absl::MutexLock lock(&stop_mu_);
  if (stopped_) return;
  Stop();
  stopped_ = true;
}

void LoopServer::Stop() {
  health_.Cancel();
  if (health_thread_.joinable()) health_thread_.join();
  if (server_ != nullptr) {
    server_->GetHealthCheckService()->Shutdown();  // NOT_SERVING from now on
    const absl::Time deadline = absl::Now() + kShutdownGrace;
    watchers_->CloseAll();
    watchers_->WaitAllDone(deadline);
    server_->Shutdown(absl::ToChronoTime(deadline));
    server_->Wait();
  }
  if (loop_started_) loop_->Stop();
  if (exposer_ != nullptr) {
    WakeExposer(metrics_port());
    exposer_.reset();
  }
}

int LoopServer::metrics_port() const {
  if (exposer_ == nullptr) return 0;
  std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

LoopServer::~LoopServer() {
  RequestShutdown();
  Wait();
}

}  // namespace loophost::sdk
