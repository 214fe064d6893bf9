// PtpEventFactory: the CloudEvents of the PTP monitor's four resources (DESIGN
// section 6), in the shape O-RAN consumers expect: lock-state and
// os-clock-sync-state carry [state (notification, enumeration), offset
// (metric, decimal64.3)], clock-class [class], sync-state [state], every value
// a string. Also event ids: random (live) or derived from the event's content
// and sequence number (--replay, so its output is byte-for-byte repeatable).
// Immutable after construction; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "loophost/v1/event.pb.h"
#include "loops/ptp/clock_state_machine.h"

namespace loophost::loops::ptp {

class PtpEventFactory {
 public:
  explicit PtpEventFactory(std::string node);

  // "/cluster/node/<node>/sync/ptp-status/lock-state", ...
  const std::string& ResourceAddress(PtpResource resource) const {
    return addresses_[static_cast<int>(resource)];
  }
  const char* EventType(PtpResource resource) const;
  // The resource with this address; false if none.
  bool FindResource(absl::string_view address, PtpResource* resource) const;
  std::vector<v1::Publisher> Publishers() const;

  // The event for `value` of `resource` (no id; the caller assigns one).
  v1::CloudEvent Make(PtpResource resource, const PublishedState& value) const;

 private:
  std::string node_;
  std::string addresses_[kPtpResourceCount];
};

// A UUID-shaped id that depends only on the event's content (id left out) and
// `sequence`.
std::string DeterministicEventId(const v1::CloudEvent& event,
                                 uint64_t sequence);
// A random (version 4) UUID.
std::string RandomEventId();

}  // namespace loophost::loops::ptp
