// HealthChecks: a loop's named health checks, as Chainlink's LOOP plugins
// report them: dotted check name ("example.echo") -> error text, "" = healthy.
// Every change bumps a version so that watchers (the WatchHealth stream) can
// wait for the next one instead of polling. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace loophost::sdk {

class HealthChecks {
 public:
  HealthChecks() = default;
  HealthChecks(const HealthChecks&) = delete;
  HealthChecks& operator=(const HealthChecks&) = delete;

  // Adds or updates check `name`; `error` "" = healthy. Setting the value a
  // check already has is not a change.
  void Set(const std::string& name, const std::string& error);

  // Every check, by name.
  std::map<std::string, std::string> Report() const;

  // Blocks until the version differs from `seen_version`, `deadline` passes or
  // Cancel() was called; returns the current version.
  uint64_t WaitForChange(uint64_t seen_version, absl::Time deadline);

  uint64_t version() const;

  // Wakes every waiter, now and for ever after (used at shutdown).
  void Cancel();
  bool cancelled() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::string> checks_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace loophost::sdk
