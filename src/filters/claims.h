#pragma once
// The claims of a verified token (a JSON object), as the handshake filters
// after authentication read them: the jwt filter makes one, authz and the
// admin API's revocation read it. Immutable once made; shared by pointer.
// Keeps Boost.JSON out of this header (it is included by filters/api.h).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weir::filters {

class Claims {
 public:
  // A JSON object, or null with *error: not JSON, not an object, a member
  // name twice in one object (RFC 7519 4: a JWT with duplicate claim names
  // is rejected, so a verifier and a backend cannot read different values),
  // nesting deeper than 32.
  static std::shared_ptr<const Claims> parse(std::string_view json, std::string* error);
  ~Claims();
  Claims(const Claims&) = delete;
  Claims& operator=(const Claims&) = delete;

  bool has(std::string_view path) const;
  // A string or integer claim as text; nullopt when absent or another type.
  // A path is dotted: "realm_access.roles" is member roles of member
  // realm_access ("sub" is a top-level claim).
  std::optional<std::string> text(std::string_view path) const;
  // A numeric claim (NumericDate), truncated to an integer; absent: nullopt;
  // present but not a number: nullopt and *bad = true.
  std::optional<std::int64_t> number(std::string_view path, bool* bad) const;
  // A boolean member; nullopt when absent or another type (RFC 7662's
  // `active` must be a JSON true, not "true" or 1).
  std::optional<bool> boolean(std::string_view path) const;
  // The strings of a claim: an array's string members, or a string's
  // space-separated words (OAuth 2 `scope`); absent or another type: empty.
  std::vector<std::string> strings(std::string_view path) const;

 private:
  struct Impl;
  explicit Claims(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace weir::filters
