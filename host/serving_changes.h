// ServingChanges: the listeners to "a plugin started or stopped serving". The
// event router and the delivery dispatcher subscribe, so that they sleep while
// nothing changes instead of polling the supervisors. A subscription ends when
// its handle is destroyed; after that its listener is never called again
// (the destructor waits for a call in progress). Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace loophost::host {

class ServingChanges {
 public:
  class Subscription {
   public:
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;
    ~Subscription();

   private:
    friend class ServingChanges;
    Subscription(ServingChanges& owner, uint64_t id) : owner_(owner), id_(id) {}
    ServingChanges& owner_;
    const uint64_t id_;
  };

  ServingChanges() = default;
  ServingChanges(const ServingChanges&) = delete;
  ServingChanges& operator=(const ServingChanges&) = delete;

  // `on_change` runs on the notifying thread and must not block (set a flag,
  // wake a thread). The handle must not outlive this object.
  std::unique_ptr<Subscription> Subscribe(std::function<void()> on_change);
  // Calls every listener.
  void Notify();

 private:
  absl::Mutex mu_;  // held while listeners run
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, std::function<void()>> listeners_ ABSL_GUARDED_BY(mu_);
};

}  // namespace loophost::host
