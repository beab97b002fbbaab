#pragma once
// Base64 (RFC 4648): the standard alphabet with padding (Basic credentials,
// Sec-WebSocket-Key), and base64url without padding (JOSE, the sticky
// cookie). Decoding is strict: a character outside the alphabet, a length
// no encoding has, or non-zero leftover bits refuse the input.

#include <optional>
#include <string>
#include <string_view>

namespace weir::http {

std::string base64_encode(std::string_view bytes);
std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace weir::http
