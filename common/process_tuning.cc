// Implementation of process_tuning.h.
#include "common/process_tuning.h"

#include <sys/resource.h>

#include "absl/base/internal/sysinfo.h"
#include "absl/synchronization/mutex.h"

namespace loophost {

void DisableMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

void WarmCpuFrequency() {
  // An internal Abseil function, called for its side effect: the value is
  // cached.
  (void)absl::base_internal::NominalCPUFrequency();
}

uint64_t RaiseOpenFileLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return static_cast<uint64_t>(limit.rlim_cur);
}

}  // namespace loophost
