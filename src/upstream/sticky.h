#pragma once
// The sticky cookie (docs/configuration.md, "sticky"): names the member a
// client was sent to, signed so that a client cannot choose a backend by
// writing the cookie itself. Value: base64url(member id, 8 bytes) "."
// base64url(HMAC-SHA256(key, group "\n" member id), first 16 bytes). The id
// is a hash of the member's text, so it stays valid across reloads and
// instances that share the key.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace weir::upstream {

std::uint64_t member_id(std::string_view group, std::string_view member_text);

std::string sign_sticky(std::string_view key, std::string_view group, std::uint64_t id);

// The member id a cookie value names; nullopt when it is malformed or its
// signature does not match (forged, or signed with another key).
std::optional<std::uint64_t> verify_sticky(std::string_view key, std::string_view group, std::string_view value);

// A member id as the session map stores it (16 hex digits); nullopt for
// anything else (no entry: "").
std::optional<std::uint64_t> parse_member_id(std::string_view hex);

}  // namespace weir::upstream
