// What /proc says about a process and the machine, for the bench's JSON
// lines: memory in the peer's keys (VmRSS, VmHWM, RssAnon, RssFile, VmSize,
// Threads from status; Pss, Pss_Anon, Pss_File from smaps_rollup), the
// shared objects a process maps, CPU model, kernel, load. Stateless reads;
// thread-safe. A missing file or key is left out, never an error.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace loophost::bench {

// Memory of `pid` (0 = this process), kB except Threads (a count).
nlohmann::json ProcMemory(int pid);

// CPU time the live threads of `pid` (0 = this process) have run, in ns
// (sum of the first field of /proc/PID/task/*/schedstat). Threads that
// already exited are not counted.
int64_t ProcCpuNs(int pid);

// Distinct shared objects (*.so*) mapped by `pid` (0 = this process).
int MappedSharedObjects(int pid);

// /proc/loadavg, trimmed.
std::string LoadAvg();

// The 1-minute load average.
double LoadAvg1();

// "model name" of /proc/cpuinfo's first CPU, or "unknown".
std::string CpuModel();

// /proc/sys/kernel/osrelease, trimmed.
std::string KernelRelease();

// MemTotal of /proc/meminfo in kB, or 0.
int64_t MemTotalKb();

}  // namespace loophost::bench
