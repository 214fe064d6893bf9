// LoopRegistry: the host's table of loops. Each registered loop gets a
// Prometheus port and its env config (LOOP_NAME, LOOP_PROMETHEUS_PORT plus what
// the caller adds). Thread-safe. Ports are reserved machine-wide: a port is
// handed out only when no other loophost holds it (an flock()ed file per port
// in the lock directory, held until Unregister) and nothing on the machine is
// bound to it (a bind test on 127.0.0.1, where plugins serve metrics).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/env_parse.h"
#include "common/unique_fd.h"

namespace loophost::registry {

struct RegisteredLoop {
  std::string name;
  uint16_t prometheus_port = 0;
  std::map<std::string, std::string>
      env;  // the loop's env config, KEY -> VALUE
};

struct LoopRegistryOptions {
  PortRange ports{20000, 20999};
  // Where the per-port lock files live; shared by every loophost of this user.
  std::string lock_dir = DefaultPortLockDir();

  static std::string DefaultPortLockDir();  // /tmp/loophost-ports-<uid>
};

class LoopRegistry {
 public:
  explicit LoopRegistry(LoopRegistryOptions options);
  ~LoopRegistry();  // releases every reservation
  LoopRegistry(const LoopRegistry&) = delete;
  LoopRegistry& operator=(const LoopRegistry&) = delete;

  // Registers `name` ([a-z0-9_], as derived from <NAME>_PLUGIN_CMD) with a
  // fresh port. AlreadyExists if registered, InvalidArgument for a bad name,
  // ResourceExhausted when every port of the range is taken.
  absl::StatusOr<RegisteredLoop> Register(
      absl::string_view name,
      std::map<std::string, std::string> extra_env = {});
  // Frees the loop's port. NotFound if not registered.
  absl::Status Unregister(absl::string_view name);
  absl::StatusOr<RegisteredLoop> Get(absl::string_view name) const;
  std::vector<RegisteredLoop> List() const;  // sorted by name

 private:
  struct Entry {
    RegisteredLoop loop;
    UniqueFd port_lock;  // flock()ed; closing it frees the port for other hosts
  };
  absl::StatusOr<std::pair<uint16_t, UniqueFd>> ReservePort()
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LoopRegistryOptions options_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry, std::less<>> loops_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loophost::registry
