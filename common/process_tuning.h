// Process-wide settings for loophost's gRPC processes (the host and C++
// plugins), each measured in bench/README.md. Call them from main(), before
// other threads start.
#pragma once

#include <cstdint>

namespace loophost {

// Debian builds Abseil without NDEBUG, so every absl::Mutex (gRPC's own
// included) runs Abseil's deadlock detector on each lock: 5-9 % of a plugin
// call's latency.
void DisableMutexDeadlockDetection();

// Abseil measures the CPU frequency by sleeping (1, 2, 4 ms ...) the first time
// any mutex is contended, stalling whoever contends; this takes that cost where
// nobody waits. Blocks for a few milliseconds: call it from a thread off the
// critical path.
void WarmCpuFrequency();

// Raises the soft limit on open files to the hard limit (as Go programs do at
// start): the transport keeps a connection per subscriber, and a common soft
// limit is 1024. Every library here waits on sockets with poll or epoll, never
// select, so descriptors past 1024 are safe. Returns the new soft limit.
uint64_t RaiseOpenFileLimit();

}  // namespace loophost
