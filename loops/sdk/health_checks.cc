// Implementation of health_checks.h.
#include "loops/sdk/health_checks.h"

namespace loophost::sdk {

void HealthChecks::Set(const std::string& name, const std::string& error) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = checks_.try_emplace(name, error);
  if (!inserted) {
    if (it->second == error) return;
    it->second = error;
  }
  ++version_;
}

std::map<std::string, std::string> HealthChecks::Report() const {
  absl::MutexLock lock(&mu_);
  return checks_;
}

uint64_t HealthChecks::WaitForChange(uint64_t seen_version,
                                     absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto changed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return version_ != seen_version || cancelled_;
  };
  mu_.AwaitWithDeadline(absl::Condition(&changed), deadline);
  return version_;
}

uint64_t HealthChecks::version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

void HealthChecks::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
}

bool HealthChecks::cancelled() const {
  absl::MutexLock lock(&mu_);
  return cancelled_;
}

}  // namespace loophost::sdk
