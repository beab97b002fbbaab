#pragma once
// JWS compact tokens (RFC 7515/7519) verified with OpenSSL's EVP: HS256/384/
// 512, RS256/384/512, PS256/384/512, ES256/384, EdDSA (Ed25519). I/O-free:
// keys are given, nothing is fetched. A key says which algorithms it may
// verify (an HMAC secret only HS*, an RSA key only RS*/PS*, a P-256 key only
// ES256, ...), so a token cannot pick an algorithm its key was not made for
// (no RS/HS confusion, no `none`).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weir::jose {

enum class Alg : std::uint8_t { HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA };
std::optional<Alg> alg_from_name(std::string_view name);
std::string_view alg_name(Alg a);

class Key {
 public:
  // An HMAC secret (raw bytes). only: the one algorithm it may verify (a
  // JWK's "alg"), else every HS*.
  static std::shared_ptr<const Key> secret(std::string bytes, std::string kid = {},
                                           std::optional<Alg> only = std::nullopt);
  // A PEM public key or certificate (RSA, EC P-256/P-384, Ed25519); null and
  // *error when it is none of those.
  static std::shared_ptr<const Key> pem(std::string_view text, std::string kid, std::string* error);
  // A public key built elsewhere (jwks.cpp, from a JWK): takes ownership of
  // pkey (an EVP_PKEY*, freed here even on failure). only: as for secret();
  // it must be an algorithm of the key's type. Null and *error otherwise.
  static std::shared_ptr<const Key> adopt(void* pkey, std::string kid, std::optional<Alg> only, std::string* error);
  ~Key();

  const std::string& kid() const { return kid_; }
  bool allows(Alg a) const;
  // The signature over signing_input (header.payload), decoded from base64url.
  bool verify(Alg a, std::string_view signing_input, std::string_view signature) const;

 private:
  Key() = default;
  enum class Kind : std::uint8_t { hmac, rsa, ec256, ec384, ed25519 } kind_ = Kind::hmac;
  std::optional<Alg> only_;
  std::string secret_;
  void* pkey_ = nullptr;  // EVP_PKEY*
  std::string kid_;
};

struct Verified {
  std::string header_json, payload_json;  // decoded
  Alg alg;
  std::string kid;
};

struct Failure {
  std::string reason;  // for the 401's error_description and the log (never the token)
  bool no_key = false; // no key fits the token's kid and alg (a key refetch may bring one)
};

// Splits, decodes, picks the key (by kid when the token has one; else every
// key that allows the algorithm is tried), checks the signature. Claims are
// the caller's (jwt_filter). max_bytes bounds the token.
std::optional<Verified> verify(std::string_view token, const std::vector<std::shared_ptr<const Key>>& keys,
                               const std::vector<Alg>& allowed, std::size_t max_bytes, Failure& why);

// base64url without padding (RFC 7515 section 2); nullopt if not that.
std::optional<std::string> base64url_decode(std::string_view in);

}  // namespace weir::jose
