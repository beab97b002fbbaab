// JWS compact tokens (filters/jwt/jose.h): split, base64url, JSON header,
// key choice, signature check, with an HMAC key and an Ed25519 key; and the
// same bytes as a claims object (filters/claims.h: duplicate names, paths).
//
// Oracles: a token that verifies names an algorithm one of the keys allows
// (never "none"); every refusal says why; base64url_decode accepts only
// canonical input (it re-encodes to itself); claims that parse have no
// error, claims that do not say why, and reading paths never fails.
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "filters/claims.h"
#include "filters/jwt/jose.h"

namespace {

std::string encode(std::string_view in) {
  static constexpr char kA[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = acc << 8 | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kA[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kA[(acc << (6 - bits)) & 63];
  return out;
}

const std::vector<std::shared_ptr<const weir::jose::Key>>& keys() {
  static const auto k = [] {
    std::vector<std::shared_ptr<const weir::jose::Key>> v;
    v.push_back(weir::jose::Key::secret(std::string(32, 'k'), "hmac"));
    EVP_PKEY* ed = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, ed);
    char* p = nullptr;
    const long n = BIO_get_mem_data(b, &p);
    std::string err;
    v.push_back(weir::jose::Key::pem(std::string_view(p, static_cast<std::size_t>(n)), "ed", &err));
    BIO_free(b);
    EVP_PKEY_free(ed);
    return v;
  }();
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  weir::jose::Failure why;
  if (const auto v = weir::jose::verify(in, keys(), {}, 8192, why)) {
    // Only what the two keys can verify: HS256/384/512 (the secret), EdDSA.
    const bool hmac = v->alg == weir::jose::Alg::HS256 || v->alg == weir::jose::Alg::HS384 ||
                      v->alg == weir::jose::Alg::HS512;
    if (!hmac && v->alg != weir::jose::Alg::EdDSA) std::abort();
  } else if (why.reason.empty()) {
    std::abort();  // every refusal says why
  }
  std::string error;
  if (const auto c = weir::filters::Claims::parse(in, &error)) {
    if (!error.empty()) std::abort();
    bool bad = false;
    for (const char* path : {"sub", "a.b", "realm_access.roles", "scope", "exp"}) {
      (void)c->text(path);
      (void)c->strings(path);
      (void)c->number(path, &bad);
    }
  } else if (error.empty()) {
    std::abort();
  }
  if (const auto d = weir::jose::base64url_decode(in)) {
    if (encode(*d) != in) std::abort();
  }
  return 0;
}
