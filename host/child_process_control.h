// Signalling, waiting for and reaping a ChildProcess from process_launcher.h.
// Free functions on a caller-owned ChildProcess: not synchronised, so one
// owner (the plugin's supervisor thread) calls them. Every child must end in
// ReapChild() or TerminateChild(); both set child.pid to -1 and close pidfd.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "host/process_launcher.h"

namespace loophost::host {

// Sends sig to the child's whole process group (killpg), falling back to the
// pid if the group is gone. OK if the child is already gone or reaped.
absl::Status SignalProcessGroup(const ChildProcess& child, int sig);

// Waits up to `timeout` for the child to exit (poll on its pidfd), without
// reaping it. true = exited (or already reaped).
bool WaitForExit(const ChildProcess& child, absl::Duration timeout);

// Reaps the child (waitid, WEXITED) and describes how it ended: "exited with
// code 1" / "killed by signal 9 (Killed)". Blocks until it exits, so call it
// once exit was seen. Sets *exit_code (or -1) and *term_signal (or 0) if
// non-null.
std::string ReapChild(ChildProcess& child, int* exit_code = nullptr,
                      int* term_signal = nullptr);

// SIGTERM to the group -> wait up to `grace` -> SIGKILL to the group (always,
// so grandchildren left in the group die too) -> reap. Returns ReapChild's
// description.
std::string TerminateChild(ChildProcess& child, absl::Duration grace,
                           int* exit_code = nullptr,
                           int* term_signal = nullptr);

// Describes a waitid() result ("exited with code 3", "killed by signal 9
// (Killed)"); shared with the handshake's exit peek.
std::string DescribeExit(int code, int status);

}  // namespace loophost::host
