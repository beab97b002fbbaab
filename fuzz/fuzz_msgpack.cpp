// MessagePack -> JSON (filters/json_schema/msgpack_json.h), the decoder of
// json_schema's `binary: msgpack`: msgpuck's mp_check over the whole payload,
// then a bounds-checked, depth-bounded decode.
//
// Oracles (beyond ASan/UBSan): the same input gives the same result twice;
// every failure says why; a decoded document is JSON: serialized and parsed
// back as text with the same max_depth it is accepted and equal (doubles to
// within Boost's parsing precision; the depth limit means the same thing for
// both formats); with a smaller max_depth a
// decoded document decodes the same or fails as too deep, nothing else.
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "filters/json_schema/msgpack_json.h"

namespace {

using weir::filters::MsgpackJson;
namespace json = boost::json;

constexpr unsigned kDepth = 64;  // json_schema's default max_depth
constexpr unsigned kShallow = 3;

void check(bool ok) {
  if (!ok) std::abort();
}

// Equal, but for doubles within a relative 1e-14: Boost 1.81's parser does
// not round every decimal to the nearest double (no precise mode before
// 1.83), so text does not bring each double back bit for bit.
bool same(const json::value& a, const json::value& b) {
  if (a.is_double() && b.is_double()) {
    const double x = a.get_double(), y = b.get_double();
    if (x == y) return true;
    if (!std::isfinite(y)) return std::fabs(x) > 1e308;  // rounded past DBL_MAX
    // Subnormals carry fewer significant bits: there the bound is relative
    // to the smallest normal double (2.4343541903422e-310 came back 2e-14 off).
    return std::fabs(x - y) <= 1e-14 * std::fmax(DBL_MIN, std::fmax(std::fabs(x), std::fabs(y)));
  }
  if (a.kind() != b.kind()) return false;
  if (a.is_array()) {
    const auto &p = a.get_array(), &q = b.get_array();
    if (p.size() != q.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i)
      if (!same(p[i], q[i])) return false;
    return true;
  }
  if (a.is_object()) {
    const auto &p = a.get_object(), &q = b.get_object();
    if (p.size() != q.size()) return false;
    for (const auto& kv : p) {
      const json::value* other = q.if_contains(kv.key());
      if (other == nullptr || !same(kv.value(), *other)) return false;
    }
    return true;
  }
  return a == b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view payload(reinterpret_cast<const char*>(data), size);
  const MsgpackJson r = weir::filters::msgpack_to_json(payload, kDepth);
  const MsgpackJson again = weir::filters::msgpack_to_json(payload, kDepth);
  check(r.error == again.error && r.why == again.why && r.pointer == again.pointer && r.value == again.value);

  if (r.error != MsgpackJson::Error::none) {
    check(!r.why.empty() && r.value.is_null());
    return 0;
  }
  json::parse_options opt;
  opt.max_depth = kDepth;
  boost::system::error_code ec;
  const json::value back = json::parse(json::serialize(r.value), ec, {}, opt);
  check(!ec && same(r.value, back));

  const MsgpackJson shallow = weir::filters::msgpack_to_json(payload, kShallow);
  check(shallow.error == MsgpackJson::Error::too_deep ||
        (shallow.error == MsgpackJson::Error::none && shallow.value == r.value));
  return 0;
}
