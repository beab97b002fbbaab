#include "filters/jwt/jose.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <boost/json.hpp>

#include "http/base64.h"

#include <algorithm>
#include <array>

namespace weir::jose {

namespace {

constexpr std::array<std::string_view, 12> kNames = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512",
                                                     "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"};

const EVP_MD* digest(Alg a) {
  switch (a) {
    case Alg::HS256: case Alg::RS256: case Alg::PS256: case Alg::ES256: return EVP_sha256();
    case Alg::HS384: case Alg::RS384: case Alg::PS384: case Alg::ES384: return EVP_sha384();
    case Alg::HS512: case Alg::RS512: case Alg::PS512: return EVP_sha512();
    case Alg::EdDSA: return nullptr;
  }
  return nullptr;
}

// JOSE's ECDSA signature is R||S, fixed width; EVP wants DER.
std::optional<std::string> ecdsa_raw_to_der(std::string_view raw, std::size_t half) {
  if (raw.size() != 2 * half) return std::nullopt;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  if (sig == nullptr) return std::nullopt;
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data() + half), static_cast<int>(half), nullptr);
  if (r == nullptr || s == nullptr || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return std::nullopt;
  }
  unsigned char* der = nullptr;
  const int n = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  if (n <= 0) return std::nullopt;
  std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(n));
  OPENSSL_free(der);
  return out;
}

}  // namespace

std::optional<Alg> alg_from_name(std::string_view name) {
  for (std::size_t i = 0; i < kNames.size(); ++i)
    if (kNames[i] == name) return static_cast<Alg>(i);
  return std::nullopt;
}

std::string_view alg_name(Alg a) { return kNames[static_cast<std::size_t>(a)]; }

std::optional<std::string> base64url_decode(std::string_view in) { return http::base64url_decode(in); }

std::shared_ptr<const Key> Key::secret(std::string bytes, std::string kid, std::optional<Alg> only) {
  std::shared_ptr<Key> k(new Key());
  k->kind_ = Kind::hmac;
  k->only_ = only;
  k->secret_ = std::move(bytes);
  k->kid_ = std::move(kid);
  return k;
}

std::shared_ptr<const Key> Key::pem(std::string_view text, std::string kid, std::string* error) {
  BIO* bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
  EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  if (pkey == nullptr) {
    // A certificate: its public key.
    BIO_free(bio);
    bio = BIO_new_mem_buf(text.data(), static_cast<int>(text.size()));
    if (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      pkey = X509_get_pubkey(cert);
      X509_free(cert);
    }
  }
  BIO_free(bio);
  if (pkey == nullptr) {
    if (error) *error = "not a PEM public key or certificate";
    return nullptr;
  }
  return adopt(pkey, std::move(kid), std::nullopt, error);
}

std::shared_ptr<const Key> Key::adopt(void* pkey_v, std::string kid, std::optional<Alg> only, std::string* error) {
  auto* pkey = static_cast<EVP_PKEY*>(pkey_v);
  if (pkey == nullptr) {
    if (error) *error = "no key";
    return nullptr;
  }
  std::shared_ptr<Key> k(new Key());
  k->pkey_ = pkey;  // freed by ~Key from here on
  k->kid_ = std::move(kid);
  switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
      if (EVP_PKEY_get_bits(pkey) < 2048) {
        if (error) *error = "RSA keys shorter than 2048 bits are refused";
        return nullptr;
      }
      k->kind_ = Kind::rsa;
      break;
    case EVP_PKEY_EC: {
      const int bits = EVP_PKEY_get_bits(pkey);
      if (bits == 256) k->kind_ = Kind::ec256;
      else if (bits == 384) k->kind_ = Kind::ec384;
      else {
        if (error) *error = "EC keys must be P-256 (ES256) or P-384 (ES384)";
        return nullptr;
      }
      break;
    }
    case EVP_PKEY_ED25519:
      k->kind_ = Kind::ed25519;
      break;
    default:
      if (error) *error = "unsupported key type (RSA, EC P-256/P-384 or Ed25519)";
      return nullptr;
  }
  if (only) {
    if (!k->allows(*only)) {
      if (error) *error = "alg " + std::string(alg_name(*only)) + " does not fit this key type";
      return nullptr;
    }
    k->only_ = only;
  }
  return k;
}

Key::~Key() { EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_)); }

bool Key::allows(Alg a) const {
  if (only_ && *only_ != a) return false;
  switch (kind_) {
    case Kind::hmac: return a == Alg::HS256 || a == Alg::HS384 || a == Alg::HS512;
    case Kind::rsa: return a >= Alg::RS256 && a <= Alg::PS512;
    case Kind::ec256: return a == Alg::ES256;
    case Kind::ec384: return a == Alg::ES384;
    case Kind::ed25519: return a == Alg::EdDSA;
  }
  return false;
}

bool Key::verify(Alg a, std::string_view input, std::string_view sig) const {
  if (!allows(a)) return false;
  if (kind_ == Kind::hmac) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(digest(a), secret_.data(), static_cast<int>(secret_.size()),
             reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len) == nullptr) {
      return false;
    }
    return sig.size() == len && CRYPTO_memcmp(mac, sig.data(), len) == 0;
  }
  std::string der;
  if (kind_ == Kind::ec256 || kind_ == Kind::ec384) {
    auto d = ecdsa_raw_to_der(sig, kind_ == Kind::ec256 ? 32 : 48);
    if (!d) return false;
    der = std::move(*d);
    sig = der;
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return false;
  EVP_PKEY_CTX* pctx = nullptr;
  bool ok = EVP_DigestVerifyInit(ctx, &pctx, digest(a), nullptr, static_cast<EVP_PKEY*>(pkey_)) == 1;
  if (ok && a >= Alg::PS256 && a <= Alg::PS512) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
  }
  ok = ok && EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                              reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

std::optional<Verified> verify(std::string_view token, const std::vector<std::shared_ptr<const Key>>& keys,
                               const std::vector<Alg>& allowed, std::size_t max_bytes, Failure& why) {
  auto fail = [&why](std::string r) -> std::optional<Verified> {
    why.reason = std::move(r);
    return std::nullopt;
  };
  if (token.size() > max_bytes) return fail("token too large");
  const auto d1 = token.find('.');
  const auto d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) {
    return fail("malformed token (not three base64url parts)");
  }
  auto header = base64url_decode(token.substr(0, d1));
  auto payload = base64url_decode(token.substr(d1 + 1, d2 - d1 - 1));
  auto sig = base64url_decode(token.substr(d2 + 1));
  if (!header || !payload || !sig) return fail("malformed token (bad base64url)");
  boost::system::error_code ec;
  const boost::json::value h = boost::json::parse(*header, ec);
  if (ec || !h.is_object()) return fail("malformed token header");
  const auto* alg_v = h.as_object().if_contains("alg");
  if (alg_v == nullptr || !alg_v->is_string()) return fail("token header has no alg");
  const auto alg = alg_from_name(alg_v->as_string());
  if (!alg) return fail("algorithm not allowed: " + std::string(alg_v->as_string()));
  if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), *alg) == allowed.end()) {
    return fail("algorithm not allowed: " + std::string(alg_name(*alg)));
  }
  if (h.as_object().contains("crit")) return fail("token header has crit extensions");
  std::string kid;
  if (const auto* k = h.as_object().if_contains("kid")) {
    if (!k->is_string()) return fail("token header kid is not a string");
    kid = std::string(k->as_string());
  }
  const std::string_view input = token.substr(0, d2);
  bool any_key = false;
  for (const auto& key : keys) {
    if (!key->allows(*alg)) continue;
    if (!kid.empty() && !key->kid().empty() && key->kid() != kid) continue;
    any_key = true;
    if (key->verify(*alg, input, *sig)) {
      Verified v;
      v.header_json = std::move(*header);
      v.payload_json = std::move(*payload);
      v.alg = *alg;
      v.kid = std::move(kid);
      return v;
    }
  }
  if (!any_key) {
    why.no_key = true;
    return fail(kid.empty() ? "no key for this algorithm" : "unknown key id");
  }
  return fail("bad signature");
}

}  // namespace weir::jose
