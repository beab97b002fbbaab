// JSON Web Key Sets (filters/jwt/jwks.h): JSON, the keys array, each JWK's
// members, base64url, and the OpenSSL key built from them (RSA, EC points,
// Ed25519), with symmetric keys allowed so the oct branch runs too.
//
// Oracles: a refused document says why and yields no key; an accepted one
// yields at most max_keys keys, none of them able to verify "none" or an
// algorithm foreign to its type (an RSA key never verifies HS256).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "filters/jwt/jwks.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  weir::jose::JwksOptions opt;
  opt.allow_oct = (size % 2) == 0;
  const auto r = weir::jose::parse_jwks(in, opt);
  if (!r.error.empty()) {
    if (!r.keys.empty()) std::abort();
    return 0;
  }
  if (r.keys.size() > opt.max_keys) std::abort();
  using weir::jose::Alg;
  for (const auto& k : r.keys) {
    const bool hs = k->allows(Alg::HS256) || k->allows(Alg::HS384) || k->allows(Alg::HS512);
    const bool asym = k->allows(Alg::RS256) || k->allows(Alg::PS256) || k->allows(Alg::ES256) ||
                      k->allows(Alg::ES384) || k->allows(Alg::EdDSA) || k->allows(Alg::RS384) ||
                      k->allows(Alg::RS512) || k->allows(Alg::PS384) || k->allows(Alg::PS512);
    if (hs && asym) std::abort();          // one key, one family
    if (hs && !opt.allow_oct) std::abort();  // no symmetric key unless allowed
  }
  return 0;
}
