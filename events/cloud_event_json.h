// JSON encodings of loophost.v1.CloudEvent for subscribers (structured mode,
// application/json), and decoding of the v2 form (tests, `create/event`). Pure
// functions, thread-safe. Every value is a string, as the O-RAN consumers
// expect.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "loophost/v1/event.pb.h"

namespace loophost::events {

// O-RAN O-Cloud notification API v2 (DESIGN section 6):
// {"specversion":"1.0","id","source","type","time","data":{"version":"1.0","values":[
//   {"ResourceAddress","data_type","value_type","value"}]}}
std::string EncodeV2Event(const loophost::v1::CloudEvent& event);
// cloud-event-proxy's v1 REST API event shape (its seed's field names).
std::string EncodeV1Event(const loophost::v1::CloudEvent& event);
absl::StatusOr<loophost::v1::CloudEvent> DecodeV2Event(absl::string_view json);

// RFC 3339 with nanoseconds, UTC: "2026-11-22T04:50:00.123456789Z".
std::string FormatEventTime(int64_t unix_nanos);

}  // namespace loophost::events
