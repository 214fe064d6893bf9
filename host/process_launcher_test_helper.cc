// Test helper for process_launcher_test: spawns argv[1..] through a
// PosixProcessLauncher, prints the child's pid on stdout, and waits to be
// killed. The test SIGKILLs it and checks the child died with it.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "host/process_launcher.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s /path/to/program [args...]\n", argv[0]);
    return 2;
  }
  loophost::host::PosixProcessLauncher launcher;
  loophost::host::ProcessSpec spec;
  spec.path = argv[1];
  for (int i = 1; i < argc; ++i) spec.argv.emplace_back(argv[i]);
  auto child = launcher.Spawn(spec);
  if (!child.ok()) {
    std::fprintf(stderr, "spawn: %s\n", child.status().ToString().c_str());
    return 1;
  }
  std::printf("%d\n", child->pid);
  std::fflush(stdout);
  while (true) ::pause();
}
