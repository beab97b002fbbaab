#pragma once
// JSON pointers (RFC 6901) as the message-judging filters write and check
// them: one token appended with '~' and '/' escaped, and the syntax a
// configured pointer must have.

#include <string>
#include <string_view>

namespace weir::filters {

// Appends "/" and key as a pointer token ('~' -> "~0", '/' -> "~1").
inline void append_pointer_token(std::string& out, std::string_view key) {
  out += '/';
  for (const char c : key) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
}

// Empty, or '/' then tokens with '~' only as "~0" or "~1".
inline bool valid_json_pointer(std::string_view p) {
  if (!p.empty() && p.front() != '/') return false;
  for (std::size_t i = 0; i < p.size(); ++i)
    if (p[i] == '~' && (i + 1 == p.size() || (p[i + 1] != '0' && p[i + 1] != '1'))) return false;
  return true;
}

}  // namespace weir::filters
