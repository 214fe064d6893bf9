// Early-return helpers for absl::Status, which Debian's Abseil (20220623) does
// not ship. LH_RETURN_IF_ERROR(expr) returns a non-OK status;
// LH_ASSIGN_OR_RETURN(lhs, expr) unwraps an absl::StatusOr or returns its
// status.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LH_RETURN_IF_ERROR(expr)                                \
  do {                                                          \
    if (::absl::Status lh_status_ = (expr); !lh_status_.ok()) { \
      return lh_status_;                                        \
    }                                                           \
  } while (false)

#define LH_STATUS_CONCAT_INNER_(a, b) a##b
#define LH_STATUS_CONCAT_(a, b) LH_STATUS_CONCAT_INNER_(a, b)

#define LH_ASSIGN_OR_RETURN(lhs, expr)                                      \
  LH_ASSIGN_OR_RETURN_IMPL_(LH_STATUS_CONCAT_(lh_statusor_, __LINE__), lhs, \
                            expr)

#define LH_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                              \
  if (!statusor.ok()) {                                \
    return std::move(statusor).status();               \
  }                                                    \
  lhs = std::move(statusor).value()
