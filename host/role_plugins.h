// RolePlugins: which plugins serve a role right now ("event_source",
// "transport": the kinds a plugin names in Describe), each with its serving
// generation's channel. The event router, the delivery dispatcher and the REST
// API find their peers through it; LoopHost implements it over its
// supervisors, tests over in-process gRPC servers. Implementations are
// thread-safe.
#pragma once

#include <grpcpp/channel.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "host/serving_changes.h"

namespace loophost::host {

inline constexpr char kEventSourceKind[] = "event_source";
inline constexpr char kTransportKind[] = "transport";

// True when `seen` (kept weakly, so that an old generation is not kept alive)
// names the same generation as `now`.
inline bool SameGeneration(const std::weak_ptr<const void>& seen,
                           const std::shared_ptr<const void>& now) {
  return !seen.owner_before(now) && !now.owner_before(seen) && !seen.expired();
}

struct ServingPlugin {
  std::string name;
  std::shared_ptr<grpc::Channel> channel;
  // Identifies the generation: a new one (a restart) compares unequal. Held,
  // so that an address is never reused while someone compares with it.
  std::shared_ptr<const void> generation;
};

class RolePlugins {
 public:
  virtual ~RolePlugins() = default;
  // Serving plugins whose kinds include `kind`, sorted by name.
  virtual std::vector<ServingPlugin> ServingWithKind(
      absl::string_view kind) const = 0;
  // The plugin `name` if it serves now.
  virtual std::optional<ServingPlugin> ServingNamed(
      absl::string_view name) const = 0;
  // Calls `on_change` after any plugin started or stopped serving (a restart
  // included), until the handle is destroyed; see ServingChanges.
  virtual std::unique_ptr<ServingChanges::Subscription> WatchServing(
      std::function<void()> on_change) const = 0;
};

}  // namespace loophost::host
