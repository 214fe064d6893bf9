// PluginSupervisor: keeps one plugin running. It owns a thread that starts a
// generation (PluginInstance), watches it (exit through the pidfd at once,
// hangs through deadline-bound health checks, health changes through the
// WatchHealth stream), restarts it with exponential backoff and jitter, and
// stops it gracefully. Status() and Client() are thread-safe snapshots for the
// operator endpoints and the rest of the host.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/unique_fd.h"
#include "host/host_metrics.h"
#include "host/plugin_client.h"
#include "host/plugin_instance.h"
#include "host/plugin_status.h"

namespace loophost::host {

struct SupervisorOptions {
  absl::Duration start_timeout = absl::Seconds(5);    // spawn -> serving
  absl::Duration health_interval = absl::Seconds(1);  // between liveness checks
  absl::Duration health_deadline = absl::Seconds(1);  // per liveness check
  int failed_checks_before_restart = 2;  // consecutive, for a hung plugin
  absl::Duration stop_grace =
      absl::Seconds(2);  // Shutdown RPC -> SIGTERM -> SIGKILL
  absl::Duration backoff_initial = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(30);
  absl::Duration healthy_reset =
      absl::Seconds(10);  // serving this long resets the backoff
};

// Computes restart delays: the first restart at once, then initial * 2^n up to
// max, each scaled by a random factor in [0.8, 1.2]; Reset() after a healthy
// period.
class RestartBackoff {
 public:
  RestartBackoff(absl::Duration initial, absl::Duration max, uint64_t seed);
  absl::Duration Next();
  void Reset() { failures_ = 0; }

 private:
  absl::Duration initial_;
  absl::Duration max_;
  int failures_ = 0;
  std::mt19937_64 rng_;
};

class PluginSupervisor {
 public:
  using InstanceFactory = std::function<std::unique_ptr<PluginInstance>()>;

  struct Identity {
    std::string name;
    std::string command;  // empty when in-process
    uint16_t prometheus_port = 0;
  };

  PluginSupervisor(Identity identity, InstanceFactory factory,
                   SupervisorOptions options, HostMetrics& metrics);
  ~PluginSupervisor();  // Stop()
  PluginSupervisor(const PluginSupervisor&) = delete;
  PluginSupervisor& operator=(const PluginSupervisor&) = delete;

  void Start();  // starts the supervision thread; the first generation starts
                 // at once
  void Stop();   // stops the plugin gracefully and joins the thread; idempotent

  PluginStatus Status() const;
  // The serving generation's client, or null while none serves.
  std::shared_ptr<PluginClient> Client() const;
  // Called (on the supervision thread) right after Client() changed: a
  // generation began or stopped serving. Set before Start().
  void SetOnServingChange(std::function<void()> on_change) {
    on_serving_change_ = std::move(on_change);
  }
  bool WaitUntilServing(absl::Time deadline) const;

 private:
  enum class GenerationEnd { kExited, kHung, kStopRequested };
  class HealthStream;

  void Run();
  absl::StatusOr<std::shared_ptr<PluginClient>> StartGeneration(
      PluginInstance& instance, absl::Time deadline);
  GenerationEnd Watch(PluginInstance& instance, PluginClient& client,
                      std::string* why);
  // Shutdown RPC, then drops `client` (the last reference to the generation's
  // channel should be it), then waits for the generation to end.
  void StopGeneration(PluginInstance& instance,
                      std::shared_ptr<PluginClient> client);
  void SetState(PluginState state, std::string error);
  void SetChecks(std::map<std::string, std::string>
                     checks);  // the plugin's reported checks
  bool WaitForStopRequest(absl::Duration timeout);

  const Identity identity_;
  const InstanceFactory factory_;
  std::function<void()> on_serving_change_;
  const SupervisorOptions options_;
  HostMetrics& metrics_;
  UniqueFd stop_event_;  // eventfd, readable once Stop() was called
  absl::Notification stop_requested_;
  std::thread thread_;

  mutable absl::Mutex mu_;
  PluginStatus status_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> reported_checks_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<PluginClient> client_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loophost::host
