// Implementation of ptp_loop.h. Threads: LogInput's thread feeds the monitor
// (lines and holdover deadlines); gRPC's threads serve EventSource; one small
// thread waits for the SDK to cancel the health checks (the first step of its
// shutdown) to end the event streams at once instead of after the server's
// grace period.
#include "loops/ptp/ptp_loop.h"

#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "loops/ptp/event_log.h"
#include "loops/ptp/event_source_service.h"
#include "loops/ptp/log_input.h"
#include "loops/ptp/ptp_config.h"
#include "loops/ptp/ptp_metrics.h"
#include "loops/ptp/ptp_monitor.h"

#ifndef LOOPHOST_VERSION
#error "LOOPHOST_VERSION must be defined by the build"
#endif

namespace loophost::loops::ptp {
namespace {

// Held events: enough for days of edges; each is a few hundred bytes.
constexpr size_t kMaxHeldEvents = 10000;

class PtpLoop final : public sdk::Loop {
 public:
  ~PtpLoop() override { Stop(); }

  std::string Name() const override { return "ptp"; }
  std::string Version() const override { return LOOPHOST_VERSION; }
  std::vector<std::string> Kinds() const override { return {"event_source"}; }
  std::vector<grpc::Service*> Services() override { return {service_.get()}; }

  absl::Status Start(sdk::LoopContext& ctx) override {
    absl::StatusOr<PtpConfig> config = PtpConfigFromEnv(ctx.env);
    if (!config.ok()) return config.status();
    config_ = *std::move(config);
    health_ = &ctx.health;
    health_->Set("ptp.input", "starting");
    health_->Set("ptp.state", "");
    health_->Set("ptp.events", "");

    std::string state_path, events_path, position_path;
    if (!config_.state_dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(config_.state_dir, ec);
      if (ec) {
        return absl::FailedPreconditionError(absl::StrCat(
            "LOOP_STATE_DIR=", config_.state_dir, ": ", ec.message()));
      }
      state_path = config_.state_dir + "/ptp-state.json";
      events_path = config_.state_dir + "/ptp-events.log";
      position_path = config_.state_dir + "/ptp-input-position.json";
    }

    absl::StatusOr<std::unique_ptr<PtpMetrics>> metrics =
        PtpMetrics::Create(ctx.metrics, config_.node_name, config_.thresholds,
                           config_.default_config);
    if (!metrics.ok()) return metrics.status();
    metrics_ = *std::move(metrics);

    absl::StatusOr<std::unique_ptr<EventLog>> log =
        EventLog::Open(events_path, kMaxHeldEvents);
    if (!log.ok()) {
      // Keep going without the file: events still flow, and the check says
      // they would not survive a restart.
      LogWarn("ptp held-event log", {{"error", log.status().ToString()}});
      health_->Set("ptp.events", std::string(log.status().message()));
      log = EventLog::Open("", kMaxHeldEvents);
    }
    log_ = *std::move(log);
    metrics_->SetHeldEvents(log_->held());

    PtpMonitor::Options options;
    options.node = config_.node_name;
    options.thresholds = config_.thresholds;
    options.default_config = config_.default_config;
    options.state_path = state_path;
    options.on_persist_health = [this](const std::string& error) {
      health_->Set("ptp.state", error);
    };
    monitor_ = std::make_unique<PtpMonitor>(
        std::move(options),
        [this](PtpResource, v1::CloudEvent event) { Publish(event); },
        metrics_.get());
    if (absl::Status s = monitor_->Restore(); !s.ok()) {
      LogWarn("ptp state not restored; starting fresh",
              {{"error", s.ToString()}});
    }

    service_ = std::make_unique<EventSourceService>(
        monitor_->factory(), *log_,
        [this](PtpResource r) { return monitor_->CurrentState(r); },
        [this] { metrics_->SetHeldEvents(log_->held()); });

    LogInputOptions input;
    input.file_path = config_.log_file;
    input.socket_path = config_.log_socket;
    input.position_path = position_path;
    LogInputHandler handler;
    handler.on_lines = [this](const std::vector<absl::string_view>& lines) {
      monitor_->ProcessLines(lines, absl::Now());
    };
    handler.next_deadline = [this] { return monitor_->NextDeadline(); };
    handler.on_deadline = [this](absl::Time now) { monitor_->AdvanceTo(now); };
    handler.on_health = [this](const std::string& error) {
      health_->Set("ptp.input", error);
    };
    absl::StatusOr<std::unique_ptr<LogInput>> started =
        LogInput::Start(std::move(input), std::move(handler));
    if (!started.ok()) {
      // Serve anyway (publishers, current state); /health says why no line
      // can arrive.
      LogError("ptp input", {{"error", started.status().ToString()}});
      health_->Set("ptp.input", std::string(started.status().message()));
    } else {
      input_ = *std::move(started);
    }
    shutdown_watcher_ = std::thread([this] { WatchShutdown(); });
    LogInfo("ptp monitor started",
            {{"node", config_.node_name},
             {"input", config_.log_file.empty()
                           ? absl::StrCat("socket ", config_.log_socket)
                           : absl::StrCat("file ", config_.log_file)},
             {"state_dir", config_.state_dir},
             {"held_events", absl::StrCat(log_->held())},
             {"last_sequence", absl::StrCat(log_->last_sequence())}});
    return absl::OkStatus();
  }

  void Stop() override {
    if (input_ != nullptr) input_->Stop();
    if (shutdown_watcher_.joinable()) {
      health_->Cancel();  // a no-op when the SDK already did
      shutdown_watcher_.join();
    }
    if (service_ != nullptr) service_->Shutdown();
  }

 private:
  void Publish(v1::CloudEvent& event) {
    event.set_id(RandomEventId());
    absl::StatusOr<uint64_t> sequence = log_->Append(std::move(event));
    std::string error =
        sequence.ok() ? "" : std::string(sequence.status().message());
    health_->Set("ptp.events", error);
    metrics_->SetHeldEvents(log_->held());
    uint64_t dropped = log_->dropped();
    if (dropped > dropped_) {
      metrics_->CountDroppedEvents(dropped - dropped_);
      dropped_ = dropped;
    }
  }

  void WatchShutdown() {
    uint64_t version = 0;
    while (!health_->cancelled())
      version = health_->WaitForChange(version, absl::InfiniteFuture());
    service_->Shutdown();
  }

  PtpConfig config_;
  sdk::HealthChecks* health_ = nullptr;
  std::unique_ptr<PtpMetrics> metrics_;
  std::unique_ptr<EventLog> log_;
  std::unique_ptr<PtpMonitor> monitor_;
  std::unique_ptr<EventSourceService> service_;
  std::unique_ptr<LogInput> input_;
  std::thread shutdown_watcher_;
  uint64_t dropped_ = 0;  // input thread only
};

}  // namespace

std::unique_ptr<sdk::Loop> MakePtpLoop() { return std::make_unique<PtpLoop>(); }

}  // namespace loophost::loops::ptp
