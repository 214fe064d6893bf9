// Resource addresses of the PTP monitor's publishers (see ptp_events.h).
#include "events/ptp_events.h"

#include "absl/strings/str_cat.h"

namespace loophost::events {

std::string ResourceAddress(absl::string_view node, absl::string_view suffix) {
  return absl::StrCat("/cluster/node/", node, suffix);
}

}  // namespace loophost::events
