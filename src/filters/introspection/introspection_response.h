#pragma once
// An OAuth 2.0 token introspection response (RFC 7662 2.2) as Weir reads it:
// a JSON object (no duplicate member names, nesting at most 32, as for JWT
// claims) whose `active` is a JSON boolean. For an active token, `exp`,
// `nbf` and `iat` must be numbers when present, and `sub` and `jti`, when
// present, text without control bytes (they become the session's identity
// and may be sent on as headers). Anything else is malformed: the endpoint
// did not answer the question, which is a 503, never a 401.
//
// I/O-free and allocation-bounded by its input (the fetch bounds the body),
// so the fuzzer drives it directly (fuzz/fuzz_introspection.cpp).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "filters/claims.h"

namespace weir::filters {

struct Introspected {
  bool active = false;
  std::shared_ptr<const Claims> claims;  // the whole response (authz reads scope, roles, ... from it)
  std::string sub, jti;                  // "" when absent
  std::optional<std::int64_t> exp;       // seconds since the epoch
};

// The response, or nullopt and *error (short, for logs; never the token).
std::optional<Introspected> parse_introspection_response(std::string_view body, std::string* error);

}  // namespace weir::filters
