// Token introspection responses (filters/introspection/introspection_response.h):
// JSON, duplicate member names at any depth, nesting, `active`, the numeric
// dates and the identity members.
//
// Oracles: a refused answer says why; an accepted one is active or not, and
// an active one has its claims, an identity without control bytes, and the
// same `active` when read back through the claims.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "filters/introspection/introspection_response.h"

namespace {
bool printable(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return s.size() <= 1024;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string error;
  const auto r = weir::filters::parse_introspection_response(in, &error);
  if (!r) {
    if (error.empty()) std::abort();
    return 0;
  }
  if (!r->active) return 0;
  if (r->claims == nullptr) std::abort();
  if (r->claims->boolean("active") != true) std::abort();
  if (!printable(r->sub) || !printable(r->jti)) std::abort();
  if (r->exp.has_value() != r->claims->has("exp")) std::abort();
  return 0;
}
