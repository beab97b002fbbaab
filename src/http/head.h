#pragma once
// HTTP/1.1 request and response heads, parsed with Beast's parser into views
// of the caller's buffer (no copies, no per-field allocation). Boost stays in
// head.cpp; this header is included widely.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace weir::http {

struct Field {
  std::string_view name;   // as received
  std::string_view value;  // leading/trailing whitespace trimmed
};

struct Head {
  // Request: method + target. Response: status + reason.
  std::string_view method;
  std::string_view target;
  unsigned status = 0;
  std::string_view reason;
  unsigned version = 0;    // 10 or 11
  std::vector<Field> fields;
  std::size_t size = 0;    // bytes of the head, including the final CRLF CRLF
  bool has_body = false;   // Content-Length > 0 or chunked

  // First field with this name (case-insensitive), or empty view.
  std::string_view get(std::string_view name) const;
  // Number of fields with this name.
  std::size_t count(std::string_view name) const;
  // True when any field with this name lists `token` (comma-separated,
  // case-insensitive): repeated fields form one list (RFC 9110 5.3).
  bool has_token(std::string_view name, std::string_view token) const;
};

enum class ParseStatus {
  complete,    // head parsed; bytes after head.size belong to the next layer
  need_more,   // incomplete: read more and call again with the whole buffer
  too_large,   // head exceeds max_bytes (431 for a request)
  bad,         // malformed (400 for a request, 502 for a response)
};

// Parses the head at the start of buf. Views in `out` point into buf.
ParseStatus parse_request_head(std::string_view buf, std::size_t max_bytes, Head& out,
                               std::string* error = nullptr);
ParseStatus parse_response_head(std::string_view buf, std::size_t max_bytes, Head& out,
                                 std::string* error = nullptr);

bool iequals(std::string_view a, std::string_view b);
// True when a comma-separated header value lists `token` (case-insensitive).
bool has_token(std::string_view list, std::string_view token);

}  // namespace weir::http
