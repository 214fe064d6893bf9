// Implementation of ptp_monitor.h.
#include "loops/ptp/ptp_monitor.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "loops/ptp/ptp_log_parser.h"

namespace loophost::loops::ptp {
namespace {

// Lines whose timestamps are linuxptp's own (CLOCK_MONOTONIC): they drive the
// replay clock. The daemon's own lines (process status, clock class) use
// another clock.
bool DrivesReplayClock(const PtpLogLine& line) {
  if (line.timestamp_s <= 0) return false;
  switch (line.kind) {
    case LineKind::kProcessStatus:
    case LineKind::kClockClass:
    case LineKind::kControl:
    case LineKind::kMalformed:
      return false;
    default:
      break;
  }
  return line.process == "ptp4l" || line.process == "phc2sys" ||
         line.process == "ts2phc";
}

absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& data) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("open ", tmp, ": ", std::strerror(errno)));
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string error = std::strerror(errno);
      ::close(fd);
      return absl::InternalError(absl::StrCat("write ", tmp, ": ", error));
    }
    done += static_cast<size_t>(n);
  }
  bool synced = ::fdatasync(fd) == 0;
  ::close(fd);
  if (!synced || ::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("save ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

PtpMonitor::PtpMonitor(Options options, EventSink sink, PtpMetrics* metrics)
    : options_(std::move(options)),
      factory_(options_.node),
      sink_(std::move(sink)),
      metrics_(metrics),
      machine_(options_.thresholds) {
  changes_.reserve(8);
}

absl::Status PtpMonitor::Restore() {
  absl::MutexLock lock(&mu_);
  saved_epoch_ = machine_.epoch();
  if (options_.state_path.empty()) return absl::OkStatus();
  std::ifstream in(options_.state_path);
  if (!in) return absl::OkStatus();  // first start
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr,
                                           /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("machine")) {
    return absl::DataLossError(
        absl::StrCat(options_.state_path, ": not a state file"));
  }
  absl::Status status = machine_.Restore(j["machine"]);
  if (!status.ok()) {
    return absl::DataLossError(
        absl::StrCat(options_.state_path, ": ", status.message()));
  }
  if (metrics_ != nullptr) metrics_->Sync(machine_);
  saved_epoch_ = machine_.epoch();
  return absl::OkStatus();
}

void PtpMonitor::ProcessLine(absl::string_view line, absl::Time now) {
  absl::MutexLock lock(&mu_);
  ParsePtpLogLine(line, options_.default_config, &line_);
  Handle(now);
  if (metrics_ != nullptr) metrics_->Flush();
}

void PtpMonitor::ProcessLines(const std::vector<absl::string_view>& lines,
                              absl::Time now) {
  absl::MutexLock lock(&mu_);
  for (absl::string_view line : lines) {
    ParsePtpLogLine(line, options_.default_config, &line_);
    Handle(now);
  }
  if (metrics_ != nullptr) metrics_->Flush();
}

void PtpMonitor::ReplayLine(absl::string_view line) {
  absl::MutexLock lock(&mu_);
  ParsePtpLogLine(line, options_.default_config, &line_);
  if (DrivesReplayClock(line_)) {
    absl::Time t = absl::FromUnixNanos(
        static_cast<int64_t>(std::llround(line_.timestamp_s * 1e9)));
    if (t > replay_now_) replay_now_ = t;
  }
  Handle(replay_now_);
  if (metrics_ != nullptr) metrics_->Flush();
}

void PtpMonitor::Handle(absl::Time now) {
  ++lines_;
  machine_.Apply(line_, now, &changes_);
  if (metrics_ != nullptr) metrics_->Update(line_, machine_);
  if (!changes_.empty()) Emit();
  if (machine_.epoch() != saved_epoch_) Save();
}

void PtpMonitor::AdvanceTo(absl::Time now) {
  absl::MutexLock lock(&mu_);
  machine_.AdvanceTo(now, &changes_);
  if (!changes_.empty()) {
    if (metrics_ != nullptr) metrics_->Sync(machine_);
    Emit();
  }
  if (machine_.epoch() != saved_epoch_) Save();
}

absl::Time PtpMonitor::NextDeadline() const {
  absl::MutexLock lock(&mu_);
  return machine_.NextDeadline();
}

void PtpMonitor::Emit() {
  for (StateChange& change : changes_) {
    LogInfo("ptp state change",
            {{"resource", factory_.ResourceAddress(change.resource)},
             {"value", change.resource == PtpResource::kClockClass
                           ? absl::StrCat(change.value.clock_class)
                           : std::string(SyncStateName(change.value.state))},
             {"reason", change.reason}});
    if (metrics_ != nullptr) metrics_->CountEvent(change.resource);
    sink_(change.resource, factory_.Make(change.resource, change.value));
  }
  changes_.clear();
}

void PtpMonitor::Save() {
  saved_epoch_ = machine_.epoch();
  if (options_.state_path.empty()) return;
  nlohmann::json j = {{"machine", machine_.Snapshot()}};
  absl::Status status = WriteFileAtomically(options_.state_path, j.dump());
  std::string error = status.ok() ? "" : std::string(status.message());
  if (error == persist_error_) return;
  if (!error.empty()) LogWarn("ptp state not saved", {{"error", error}});
  persist_error_ = error;
  if (options_.on_persist_health) options_.on_persist_health(error);
}

absl::StatusOr<v1::CloudEvent> PtpMonitor::CurrentState(
    PtpResource resource) const {
  absl::MutexLock lock(&mu_);
  PublishedState value = machine_.published(resource);
  if (!value.known) {
    if (resource == PtpResource::kClockClass) {
      return absl::NotFoundError("no clock class reported yet");
    }
    value.state = SyncState::kFreerun;
    value.time = absl::Now();
  }
  int64_t offset = 0;
  if (machine_.CurrentOffset(resource, &offset)) {
    value.has_offset = true;
    value.offset_ns = offset;
  }
  v1::CloudEvent event = factory_.Make(resource, value);
  event.set_id(RandomEventId());
  return event;
}

std::string PtpMonitor::persist_error() const {
  absl::MutexLock lock(&mu_);
  return persist_error_;
}

uint64_t PtpMonitor::lines() const {
  absl::MutexLock lock(&mu_);
  return lines_;
}

}  // namespace loophost::loops::ptp
