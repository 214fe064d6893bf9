// <sys/pidfd.h> for C++: glibc 2.36 (Debian 12) declares pidfd_open and
// pidfd_send_signal without extern "C" (fixed in 2.37), so a plain include
// links against mangled names. Include this instead. No state.
#pragma once

#include <fcntl.h>
#include <signal.h>

extern "C" {
#include <sys/pidfd.h>
}
