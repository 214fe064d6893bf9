// Names the calling thread as `top -H`, ps and /proc/<pid>/task/*/comm show
// it, so an operator can tell which part of loophost uses the CPU.
#pragma once

#include <pthread.h>

namespace loophost {

// `name` is at most 15 characters (the kernel's limit); longer is cut.
inline void NameThisThread(const char* name) {
  char buf[16] = {};
  for (int i = 0; i < 15 && name[i] != '\0'; ++i) buf[i] = name[i];
  ::pthread_setname_np(::pthread_self(), buf);
}

}  // namespace loophost
