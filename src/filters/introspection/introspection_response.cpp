#include "filters/introspection/introspection_response.h"

namespace weir::filters {

namespace {

// A member usable as an identity: a string (or an integer, as JWT claims
// allow) with no control bytes, at most 1 KiB.
bool identity(const Claims& c, std::string_view name, std::string& out, std::string* error) {
  if (!c.has(name)) return true;
  auto v = c.text(name);
  bool ok = v.has_value() && v->size() <= 1024;
  if (ok)
    for (unsigned char ch : *v)
      if (ch < 0x20 || ch == 0x7f) ok = false;
  if (!ok) {
    *error = "'" + std::string(name) + "' is not a printable string of at most 1 KiB";
    return false;
  }
  out = std::move(*v);
  return true;
}

}  // namespace

std::optional<Introspected> parse_introspection_response(std::string_view body, std::string* error) {
  std::string why;
  auto claims = Claims::parse(body, &why);
  if (!claims) {
    // Claims::parse speaks of claims; here it is the endpoint's answer.
    *error = why.rfind("duplicate", 0) == 0 ? "duplicate member " + why.substr(why.find('\'')) : "not a JSON object";
    return std::nullopt;
  }
  const auto active = claims->boolean("active");
  if (!active) {
    *error = "'active' is missing or not a boolean";
    return std::nullopt;
  }
  Introspected r;
  r.active = *active;
  if (!r.active) return r;  // RFC 7662 2.2: nothing else need be said about an inactive token
  bool bad = false;
  r.exp = claims->number("exp", &bad);
  (void)claims->number("nbf", &bad);
  (void)claims->number("iat", &bad);
  if (bad) {
    *error = "exp, nbf and iat must be numbers";
    return std::nullopt;
  }
  if (!identity(*claims, "sub", r.sub, error) || !identity(*claims, "jti", r.jti, error)) return std::nullopt;
  r.claims = std::move(claims);
  return r;
}

}  // namespace weir::filters
