// Early-return helpers for absl::Status and absl::StatusOr (Abseil 20220623 has neither).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FARM_STATUS_CONCAT_INNER_(a, b) a##b
#define FARM_STATUS_CONCAT_(a, b) FARM_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define FARM_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::absl::Status farm_status_ = (expr);        \
    if (!farm_status_.ok()) return farm_status_; \
  } while (0)

// FARM_ASSIGN_OR_RETURN(lhs, expr): evaluates the StatusOr `expr`; returns its status if it is
// not OK, else assigns (moves) its value to `lhs`, which may be a declaration.
#define FARM_ASSIGN_OR_RETURN(lhs, expr) \
  FARM_ASSIGN_OR_RETURN_IMPL_(FARM_STATUS_CONCAT_(farm_statusor_, __LINE__), lhs, expr)

#define FARM_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)   \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
