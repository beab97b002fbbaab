#pragma once
// JSON Web Key Sets (RFC 7517) → jose::Key. I/O-free: the document is given
// (jwks_source.h fetches it). Public keys only: RSA (n, e), EC (crv P-256 or
// P-384, x, y), OKP (crv Ed25519, x); symmetric "oct" keys (k) only when the
// caller allows them. A key's "alg" restricts it to that algorithm; a key
// whose "use" is not "sig", or whose kty/crv is unknown, is skipped and
// counted, not fatal (an IdP may publish encryption keys or new types beside
// the ones we verify with). A key of a known type with broken members, or a
// document that is not a JWKS, is an error: the whole set is refused, so a
// bad answer never replaces good cached keys.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "filters/jwt/jose.h"

namespace weir::jose {

struct JwksResult {
  std::vector<std::shared_ptr<const Key>> keys;  // in document order
  std::size_t skipped = 0;                       // not for signatures, unknown kty or crv
  std::string error;                             // not empty: refused (keys is empty), says why
};

struct JwksOptions {
  bool allow_oct = false;                  // symmetric keys from a document (off: a JWKS URL is public)
  std::size_t max_keys = 100;              // more is an error
  std::size_t max_bytes = std::size_t{1} << 20;
};

JwksResult parse_jwks(std::string_view json, const JwksOptions& opt = {});

}  // namespace weir::jose
