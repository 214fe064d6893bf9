// ServingChanges (see serving_changes.h).
#include "host/serving_changes.h"

#include <utility>

namespace loophost::host {

ServingChanges::Subscription::~Subscription() {
  absl::MutexLock lock(&owner_.mu_);
  owner_.listeners_.erase(id_);
}

std::unique_ptr<ServingChanges::Subscription> ServingChanges::Subscribe(
    std::function<void()> on_change) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  listeners_.emplace(id, std::move(on_change));
  return std::unique_ptr<Subscription>(new Subscription(*this, id));
}

void ServingChanges::Notify() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, listener] : listeners_) listener();
}

}  // namespace loophost::host
