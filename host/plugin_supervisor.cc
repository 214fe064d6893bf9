// Implementation of PluginSupervisor and RestartBackoff (plugin_supervisor.h).
#include "host/plugin_supervisor.h"

#include <poll.h>
#include <sys/eventfd.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/thread_name.h"

namespace loophost::host {
namespace {

constexpr absl::Duration kDescribeDeadline = absl::Seconds(2);
constexpr absl::Duration kShutdownRpcDeadline = absl::Seconds(1);

std::string RoundedDuration(absl::Duration d) {
  return absl::FormatDuration(absl::Trunc(d, absl::Milliseconds(1)));
}

}  // namespace

RestartBackoff::RestartBackoff(absl::Duration initial, absl::Duration max,
                               uint64_t seed)
    : initial_(initial), max_(max), rng_(seed) {}

absl::Duration RestartBackoff::Next() {
  const int failures = failures_++;
  if (failures == 0) return absl::ZeroDuration();
  absl::Duration delay = initial_ * std::ldexp(1.0, std::min(failures - 1, 30));
  delay = std::min(delay, max_);
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return delay * jitter(rng_);
}

// Reads the plugin's WatchHealth stream on gRPC's callback threads and hands
// every report to the supervisor. Lives for one generation; Cancel() +
// WaitDone() before destruction.
class PluginSupervisor::HealthStream
    : public grpc::ClientReadReactor<loophost::v1::HealthReportResponse> {
 public:
  HealthStream(
      PluginClient& client,
      std::function<void(std::map<std::string, std::string>)> on_report)
      : on_report_(std::move(on_report)) {
    client.plugin_stub().async()->WatchHealth(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    on_report_(std::map<std::string, std::string>(response_.checks().begin(),
                                                  response_.checks().end()));
    StartRead(&response_);
  }
  void OnDone(const grpc::Status& status) override {
    {
      absl::MutexLock lock(&mu_);
      final_status_ = status;
    }
    done_.Notify();
  }
  bool done() const { return done_.HasBeenNotified(); }
  grpc::StatusCode code() const {
    absl::MutexLock lock(&mu_);
    return final_status_.error_code();
  }
  void CancelAndWait() {
    context_.TryCancel();
    done_.WaitForNotification();
  }

 private:
  std::function<void(std::map<std::string, std::string>)> on_report_;
  grpc::ClientContext context_;
  loophost::v1::WatchHealthRequest request_;
  loophost::v1::HealthReportResponse response_;
  mutable absl::Mutex mu_;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
  absl::Notification done_;
};

PluginSupervisor::PluginSupervisor(Identity identity, InstanceFactory factory,
                                   SupervisorOptions options,
                                   HostMetrics& metrics)
    : identity_(std::move(identity)),
      factory_(std::move(factory)),
      options_(options),
      metrics_(metrics),
      stop_event_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  absl::MutexLock lock(&mu_);
  status_.name = identity_.name;
  status_.command = identity_.command;
  status_.in_process = identity_.command.empty();
  status_.prometheus_port = identity_.prometheus_port;
  status_.state = PluginState::kStarting;
  status_.last_error = "not started yet";
}

PluginSupervisor::~PluginSupervisor() { Stop(); }

void PluginSupervisor::Start() {
  thread_ = std::thread([this] {
    NameThisThread("lh-supervisor");
    Run();
  });
}

void PluginSupervisor::Stop() {
  if (!stop_requested_.HasBeenNotified()) {
    stop_requested_.Notify();
    uint64_t one = 1;
    (void)::write(stop_event_.get(), &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
}

bool PluginSupervisor::WaitForStopRequest(absl::Duration timeout) {
  return stop_requested_.WaitForNotificationWithTimeout(timeout);
}

PluginStatus PluginSupervisor::Status() const {
  absl::MutexLock lock(&mu_);
  PluginStatus out = status_;
  out.checks = reported_checks_;
  out.checks[identity_.name] =
      status_.state == PluginState::kServing ? "" : status_.last_error;
  return out;
}

std::shared_ptr<PluginClient> PluginSupervisor::Client() const {
  absl::MutexLock lock(&mu_);
  return client_;
}

bool PluginSupervisor::WaitUntilServing(absl::Time deadline) const {
  auto serving = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return status_.state == PluginState::kServing;
  };
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(absl::Condition(&serving), deadline);
}

void PluginSupervisor::SetState(PluginState state, std::string error) {
  absl::MutexLock lock(&mu_);
  status_.state = state;
  status_.last_error = std::move(error);
}

void PluginSupervisor::SetChecks(std::map<std::string, std::string> checks) {
  metrics_.SetPluginHealth(identity_.name, checks);
  absl::MutexLock lock(&mu_);
  reported_checks_ = std::move(checks);
}

absl::StatusOr<std::shared_ptr<PluginClient>> PluginSupervisor::StartGeneration(
    PluginInstance& instance, absl::Time deadline) {
  auto channel = instance.Start(deadline);
  if (!channel.ok()) return channel.status();
  {
    absl::MutexLock lock(&mu_);
    status_.pid = instance.pid();
  }
  auto client =
      std::make_shared<PluginClient>(identity_.name, *channel, metrics_);
  if (absl::Status s = client->WaitUntilServing(deadline); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("health: ", s.message()));
  }
  auto description = client->Describe(kDescribeDeadline);
  if (!description.ok()) {
    return absl::Status(
        description.status().code(),
        absl::StrCat("describe: ", description.status().message()));
  }
  absl::MutexLock lock(&mu_);
  status_.version = description->version;
  status_.kinds = description->kinds;
  return client;
}

PluginSupervisor::GenerationEnd PluginSupervisor::Watch(
    PluginInstance& instance, PluginClient& client, std::string* why) {
  // Health changes arrive on the stream; a plain go-plugin plugin has none
  // (UNIMPLEMENTED).
  auto stream = std::make_unique<HealthStream>(
      client, [this](auto checks) { SetChecks(std::move(checks)); });
  int failed_checks = 0;
  GenerationEnd end = GenerationEnd::kStopRequested;
  for (;;) {
    pollfd fds[2] = {{stop_event_.get(), POLLIN, 0},
                     {instance.exit_fd(), POLLIN, 0}};
    int n = ::poll(
        fds, 2,
        static_cast<int>(absl::ToInt64Milliseconds(options_.health_interval)));
    if (n < 0 && errno != EINTR) {
      *why = absl::StrCat("poll: ", std::strerror(errno));
      end = GenerationEnd::kHung;
      break;
    }
    if (fds[0].revents != 0) {
      end = GenerationEnd::kStopRequested;
      break;
    }
    if (fds[1].revents != 0) {
      *why = instance.CollectExit();
      end = GenerationEnd::kExited;
      break;
    }
    if (n != 0) continue;
    // Liveness: a stopped or wedged plugin does not answer within the deadline.
    absl::Status health = client.CheckHealth(options_.health_deadline);
    if (health.ok()) {
      if (failed_checks > 0)
        LogInfo("plugin healthy again", {{"plugin", identity_.name}});
      failed_checks = 0;
      SetState(PluginState::kServing, "");
      // The stream ended early (not unimplemented): poll the report instead.
      if (stream->done() && stream->code() != grpc::StatusCode::UNIMPLEMENTED) {
        if (auto report = client.HealthReport(options_.health_deadline);
            report.ok())
          SetChecks(*report);
      }
      continue;
    }
    ++failed_checks;
    std::string error = absl::StrCat("health check failed (", failed_checks,
                                     " in a row): ", health.message());
    LogWarn("plugin unhealthy", {{"plugin", identity_.name}, {"error", error}});
    SetState(PluginState::kUnhealthy, error);
    if (failed_checks >= options_.failed_checks_before_restart) {
      *why = error;
      end = GenerationEnd::kHung;
      break;
    }
  }
  // No call may outlive the generation's server (an in-process channel must not
  // be used after its server stopped), so the stream ends before the kill,
  // which Run() does once no one can get this generation's client any more.
  stream->CancelAndWait();
  return end;
}

void PluginSupervisor::StopGeneration(PluginInstance& instance,
                                      std::shared_ptr<PluginClient> client) {
  if (absl::Status s = client->Shutdown(kShutdownRpcDeadline); !s.ok()) {
    LogDebug("Shutdown RPC failed",
             {{"plugin", identity_.name}, {"error", std::string(s.message())}});
  }
  // Close our connection now, as go-plugin's Kill() does: a gRPC server
  // finishes its shutdown only when every connection is gone, so an open
  // channel would make the plugin wait out its whole shutdown grace.
  client.reset();
  std::string how = instance.Stop(options_.stop_grace);
  LogInfo("plugin stopped", {{"plugin", identity_.name}, {"result", how}});
}

void PluginSupervisor::Run() {
  RestartBackoff backoff(options_.backoff_initial, options_.backoff_max,
                         std::random_device{}());
  bool first = true;
  while (!stop_requested_.HasBeenNotified()) {
    if (!first) {
      metrics_.IncPluginRestarts(identity_.name);
      absl::MutexLock lock(&mu_);
      ++status_.restarts;
    }
    first = false;
    {
      absl::MutexLock lock(&mu_);
      status_.state = PluginState::kStarting;
      status_.started_at = absl::Now();
      status_.pid = 0;
    }
    std::unique_ptr<PluginInstance> instance = factory_();
    const absl::Time started = absl::Now();
    auto client = StartGeneration(*instance, started + options_.start_timeout);
    std::string why;
    if (!client.ok()) {
      why = absl::StrCat("start failed: ", client.status().message());
      LogError("plugin failed to start",
               {{"plugin", identity_.name}, {"error", why}});
      instance->Kill();
    } else {
      LogFields fields = {{"plugin", identity_.name},
                          {"startup", RoundedDuration(absl::Now() - started)}};
      if (instance->pid() > 0)
        fields.emplace_back("pid", absl::StrCat(instance->pid()));
      LogInfo("plugin serving", fields);
      {
        absl::MutexLock lock(&mu_);
        client_ = *client;
        status_.state = PluginState::kServing;
        status_.last_error.clear();
      }
      if (on_serving_change_) on_serving_change_();
      metrics_.SetPluginUp(identity_.name, true);
      GenerationEnd end = Watch(*instance, **client, &why);
      {
        absl::MutexLock lock(&mu_);
        client_.reset();
      }
      if (on_serving_change_) on_serving_change_();
      metrics_.SetPluginUp(identity_.name, false);
      if (end == GenerationEnd::kHung) {
        absl::StrAppend(&why, "; killed: ", instance->Kill());
      }
      if (end == GenerationEnd::kStopRequested) {
        StopGeneration(*instance, *std::move(client));
        break;
      }
      LogError("plugin died", {{"plugin", identity_.name}, {"reason", why}});
      if (absl::Now() - started >= options_.healthy_reset) backoff.Reset();
    }
    SetChecks({});
    instance.reset();
    absl::Duration delay = backoff.Next();
    SetState(PluginState::kBackoff,
             absl::StrCat(why, "; restarting in ", RoundedDuration(delay)));
    if (delay > absl::ZeroDuration()) {
      LogInfo("plugin restart scheduled",
              {{"plugin", identity_.name}, {"in", RoundedDuration(delay)}});
    }
    if (WaitForStopRequest(delay)) break;
  }
  metrics_.SetPluginUp(identity_.name, false);
  SetState(PluginState::kStopped, "stopped");
  absl::MutexLock lock(&mu_);
  status_.pid = 0;
}

}  // namespace loophost::host
