#pragma once
// MessagePack -> JSON document, for json_schema's `binary: msgpack`: a binary
// message is decoded into the Boost.JSON value the route's schema validates.
// Pure (no I/O, no state): the filter, its unit tests and fuzz/fuzz_msgpack
// drive the same function. msgpuck (Debian libmsgpuck-dev) is used by the .cpp
// only; nothing that includes this header sees it.
//
// The payload must be exactly one MessagePack object (trailing bytes fail).
// Mapping: nil -> null, bool, int -> int64, uint -> int64 (uint64 above
// INT64_MAX), float/double -> double (NaN and infinities fail), str -> string
// (must be UTF-8), array, map with str keys (unique) -> object. bin, ext, a
// non-str key, a repeated key, NaN/inf and a non-UTF-8 str are not
// representable in JSON. Containers nest at most max_depth levels (the
// limit JSON text has in the filter); depth is checked before descending,
// so the recursion is bounded by max_depth whatever the input.

#include <boost/json/value.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace weir::filters {

struct MsgpackJson {
  enum class Error : std::uint8_t {
    none,
    not_msgpack,        // malformed, truncated, or trailing bytes
    not_representable,  // well-formed, but has no JSON equivalent (bin, ext, NaN, ...)
    too_deep,           // containers nested deeper than max_depth
  };
  Error error = Error::none;
  std::string why;            // when error: a short text for a Close reason
  std::string pointer;        // not_representable, too_deep: the JSON pointer of the value ("" = root)
  boost::json::value value;   // when none: the document
};

MsgpackJson msgpack_to_json(std::string_view payload, unsigned max_depth);

}  // namespace weir::filters
