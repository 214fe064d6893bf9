// Conversion from grpc::Status to absl::Status (the codes share numbering),
// with the call's name prefixed so that errors say which RPC failed.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace loophost {

inline absl::Status ToAbslStatus(const grpc::Status& s,
                                 absl::string_view call = {}) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      call.empty()
                          ? s.error_message()
                          : absl::StrCat(call, ": ", s.error_message()));
}

}  // namespace loophost
