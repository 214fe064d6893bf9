// Implementation of process_tuning.h.
#include "common/process_tuning.h"

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

}  // namespace loophost
