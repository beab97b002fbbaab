#include "filters/json_schema/msgpack_json.h"

#include <msgpuck.h>

#include <boost/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "filters/json_pointer.h"
#include "ws/utf8.h"

namespace weir::filters {

namespace json = boost::json;

namespace {

using Error = MsgpackJson::Error;

// Decodes one object from [p_, end_) into a JSON value. mp_check has already
// walked the whole payload, but its object counter is a C int that a 32-bit
// array or map count can wrap (a 5-byte `dd ff ff ff ff` passes it), so every
// header and string length is checked against what is left here as well: a
// malformed payload that gets past mp_check still never reads out of bounds.
class Decoder {
 public:
  Decoder(const char* p, const char* end, unsigned max_depth) : p_(p), end_(end), max_depth_(max_depth) {}

  // depth: the containers around this value.
  bool value(json::value& out, unsigned depth) {
    if (p_ >= end_) return truncated();
    // 0xc1 is never used by the format; mp_typeof files it under ext.
    if (static_cast<unsigned char>(*p_) == 0xc1) return fail(Error::not_msgpack, "byte 0xc1");
    switch (mp_typeof(*p_)) {
      case MP_NIL:
        if (mp_check_nil(p_, end_) > 0) return truncated();
        mp_decode_nil(&p_);
        out = nullptr;
        return true;
      case MP_BOOL:
        if (mp_check_bool(p_, end_) > 0) return truncated();
        out = mp_decode_bool(&p_);
        return true;
      case MP_UINT: {
        if (mp_check_uint(p_, end_) > 0) return truncated();
        const std::uint64_t u = mp_decode_uint(&p_);
        if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          out = static_cast<std::int64_t>(u);
        else
          out = u;
        return true;
      }
      case MP_INT:
        if (mp_check_int(p_, end_) > 0) return truncated();
        out = static_cast<std::int64_t>(mp_decode_int(&p_));
        return true;
      case MP_FLOAT:
      case MP_DOUBLE: {
        const bool single = mp_typeof(*p_) == MP_FLOAT;
        if ((single ? mp_check_float(p_, end_) : mp_check_double(p_, end_)) > 0) return truncated();
        const double d = single ? static_cast<double>(mp_decode_float(&p_)) : mp_decode_double(&p_);
        if (!std::isfinite(d)) return fail(Error::not_representable, "NaN or infinity is not representable in JSON");
        out = d;
        return true;
      }
      case MP_STR: {
        std::string_view s;
        if (!string(&s)) return false;
        out = json::string(s, out.storage());
        return true;
      }
      case MP_BIN:
        return fail(Error::not_representable, "bin is not representable in JSON");
      case MP_EXT:
        return fail(Error::not_representable, "ext is not representable in JSON");
      case MP_ARRAY:
        return array(out, depth);
      case MP_MAP:
        return map(out, depth);
    }
    return fail(Error::not_msgpack, "unknown type");
  }

  const char* at() const { return p_; }
  Error error = Error::none;
  std::string why;
  std::vector<std::string> path;  // JSON pointer segments, innermost first (filled while unwinding)

 private:
  bool fail(Error e, const char* what) {
    error = e;
    why = what;
    return false;
  }
  bool truncated() { return fail(Error::not_msgpack, "truncated"); }

  bool deeper(unsigned depth) {
    if (depth < max_depth_) return true;
    error = Error::too_deep;
    why = "nested deeper than " + std::to_string(max_depth_);
    return false;
  }

  // A str at p_: its bytes, which must be UTF-8.
  bool string(std::string_view* s) {
    if (mp_check_strl(p_, end_) > 0) return truncated();
    const std::uint32_t len = mp_decode_strl(&p_);
    if (len > static_cast<std::size_t>(end_ - p_)) return truncated();
    *s = std::string_view(p_, len);
    p_ += len;
    if (!ws::is_valid_utf8(*s)) return fail(Error::not_representable, "a string that is not UTF-8");
    return true;
  }

  bool array(json::value& out, unsigned depth) {
    if (!deeper(depth)) return false;
    if (mp_check_array(p_, end_) > 0) return truncated();
    const std::uint32_t n = mp_decode_array(&p_);
    // Each element takes at least one byte: a larger count cannot fit.
    if (n > static_cast<std::size_t>(end_ - p_)) return truncated();
    json::array& a = out.emplace_array();
    a.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      json::value& item = a.emplace_back(nullptr);
      if (!value(item, depth + 1)) {
        path.push_back(std::to_string(i));
        return false;
      }
    }
    return true;
  }

  bool map(json::value& out, unsigned depth) {
    if (!deeper(depth)) return false;
    if (mp_check_map(p_, end_) > 0) return truncated();
    const std::uint32_t n = mp_decode_map(&p_);
    if (2 * static_cast<std::uint64_t>(n) > static_cast<std::uint64_t>(end_ - p_)) return truncated();
    json::object& o = out.emplace_object();
    o.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      if (p_ >= end_) return truncated();
      if (static_cast<unsigned char>(*p_) == 0xc1) return fail(Error::not_msgpack, "byte 0xc1");
      if (mp_typeof(*p_) != MP_STR) return fail(Error::not_representable, "a map key that is not a string");
      std::string_view key;
      if (!string(&key)) return false;
      // A repeated key would leave the schema judging one value and the
      // backend's decoder perhaps taking the other.
      if (o.contains(key)) {
        path.push_back(std::string(key));
        return fail(Error::not_representable, "a repeated map key");
      }
      json::value& item = o[key];
      if (!value(item, depth + 1)) {
        path.push_back(std::string(key));
        return false;
      }
    }
    return true;
  }

  const char* p_;
  const char* const end_;
  const unsigned max_depth_;
};

MsgpackJson not_msgpack(std::string what) {
  MsgpackJson r;
  r.error = Error::not_msgpack;
  r.why = "not MessagePack: " + what;
  return r;
}

}  // namespace

MsgpackJson msgpack_to_json(std::string_view payload, unsigned max_depth) {
  const char* const begin = payload.data();
  const char* const end = begin + payload.size();
  if (payload.empty()) return not_msgpack("empty");
  // Iterative (an object counter, no recursion): a payload nested 100 000
  // deep costs no stack here; the decoder below stops at max_depth.
  const char* p = begin;
  if (mp_check(&p, end) != 0) return not_msgpack("truncated");
  if (p != end) return not_msgpack(std::to_string(end - p) + " trailing bytes after the object");

  MsgpackJson r;
  Decoder d(begin, end, max_depth);
  if (!d.value(r.value, 0)) {
    r.error = d.error;
    r.value = nullptr;
    if (d.error == Error::not_msgpack) {
      r.why = "not MessagePack: " + d.why;
      return r;
    }
    for (auto it = d.path.rbegin(); it != d.path.rend(); ++it) append_pointer_token(r.pointer, *it);
    // As JSON text says it; the pointer would be hundreds of "/0".
    if (d.error == Error::too_deep)
      r.why = d.why;
    else
      r.why = "msgpack: " + (r.pointer.empty() ? std::string("/") : r.pointer) + ": " + d.why;
    return r;
  }
  // mp_check fooled by a wrapped count can end early: what is left is not
  // part of the object.
  if (d.at() != end) return not_msgpack(std::to_string(end - d.at()) + " trailing bytes after the object");
  return r;
}

}  // namespace weir::filters
