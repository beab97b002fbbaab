#include "filters/jwt/jwks.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <boost/json.hpp>

#include <optional>

namespace weir::jose {

namespace json = boost::json;

namespace {

// Frees what OpenSSL handed out, on every path.
struct Params {
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  std::vector<BIGNUM*> bns;
  ~Params() {
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    for (BIGNUM* b : bns) BN_free(b);
  }
  bool push_bn(const char* name, const std::string& big_endian) {
    BIGNUM* b = BN_bin2bn(reinterpret_cast<const unsigned char*>(big_endian.data()),
                          static_cast<int>(big_endian.size()), nullptr);
    if (b == nullptr) return false;
    bns.push_back(b);
    return bld != nullptr && OSSL_PARAM_BLD_push_BN(bld, name, b) == 1;
  }
};

// A public key from OSSL_PARAMs, checked (an EC point on its curve).
EVP_PKEY* from_params(const char* type, Params& p) {
  if (p.bld == nullptr) return nullptr;
  p.params = OSSL_PARAM_BLD_to_param(p.bld);
  if (p.params == nullptr) return nullptr;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* pkey = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, p.params) != 1) {
    EVP_PKEY_CTX_free(ctx);
    return nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_CTX* check = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr);
  const bool ok = check != nullptr && EVP_PKEY_public_check(check) == 1;
  EVP_PKEY_CTX_free(check);
  if (!ok) {
    EVP_PKEY_free(pkey);
    return nullptr;
  }
  return pkey;
}

struct Jwk {
  const json::object& o;
  std::string where;  // "keys[3]" or "keys[3] (kid k1)", for errors
  std::string* error;

  // A base64url member, decoded; nullopt and *error when absent or not that.
  std::optional<std::string> bytes(std::string_view name) const {
    const auto* v = o.if_contains(name);
    if (v == nullptr || !v->is_string()) {
      *error = where + ": '" + std::string(name) + "' is missing or not a string";
      return std::nullopt;
    }
    auto d = base64url_decode(v->as_string());
    if (!d || d->empty()) *error = where + ": '" + std::string(name) + "' is not base64url";
    if (!d || d->empty()) return std::nullopt;
    return d;
  }
  std::optional<std::string_view> text(std::string_view name) const {
    const auto* v = o.if_contains(name);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) {
      *error = where + ": '" + std::string(name) + "' is not a string";
      return std::string_view();
    }
    return std::string_view(v->as_string());
  }
};

EVP_PKEY* rsa_key(const Jwk& k) {
  const auto n = k.bytes("n");
  if (!n) return nullptr;
  const auto e = k.bytes("e");
  if (!e) return nullptr;
  Params p;
  if (!p.push_bn(OSSL_PKEY_PARAM_RSA_N, *n) || !p.push_bn(OSSL_PKEY_PARAM_RSA_E, *e)) return nullptr;
  EVP_PKEY* pkey = from_params("RSA", p);
  if (pkey == nullptr) *k.error = k.where + ": not a valid RSA public key";
  return pkey;
}

EVP_PKEY* ec_key(const Jwk& k, std::string_view crv) {
  const std::size_t size = crv == "P-256" ? 32 : 48;
  const auto x = k.bytes("x");
  if (!x) return nullptr;
  const auto y = k.bytes("y");
  if (!y) return nullptr;
  // RFC 7518 6.2.1.2: full-width coordinates, leading zeros kept.
  if (x->size() != size || y->size() != size) {
    *k.error = k.where + ": 'x' and 'y' must be " + std::to_string(size) + " bytes for " + std::string(crv);
    return nullptr;
  }
  const std::string point = "\x04" + *x + *y;  // uncompressed (SEC 1 2.3.3)
  Params p;
  if (p.bld == nullptr ||
      OSSL_PARAM_BLD_push_utf8_string(p.bld, OSSL_PKEY_PARAM_GROUP_NAME, crv == "P-256" ? "P-256" : "P-384", 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(p.bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1) {
    *k.error = k.where + ": out of memory";
    return nullptr;
  }
  EVP_PKEY* pkey = from_params("EC", p);
  if (pkey == nullptr) *k.error = k.where + ": not a point on " + std::string(crv);
  return pkey;
}

EVP_PKEY* ed25519_key(const Jwk& k) {
  const auto x = k.bytes("x");
  if (!x) return nullptr;
  if (x->size() != 32) {
    *k.error = k.where + ": 'x' must be 32 bytes for Ed25519";
    return nullptr;
  }
  EVP_PKEY* pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                               reinterpret_cast<const unsigned char*>(x->data()), x->size());
  if (pkey == nullptr) *k.error = k.where + ": not a valid Ed25519 public key";
  return pkey;
}

}  // namespace

JwksResult parse_jwks(std::string_view text, const JwksOptions& opt) {
  JwksResult r;
  auto fail = [&r](std::string why) {
    r.keys.clear();
    r.error = std::move(why);
    return std::move(r);
  };
  if (text.size() > opt.max_bytes) return fail("JWKS larger than " + std::to_string(opt.max_bytes) + " bytes");
  boost::system::error_code ec;
  json::parse_options po;
  po.max_depth = 16;
  const json::value doc = json::parse(text, ec, {}, po);
  if (ec) return fail("JWKS is not JSON: " + ec.message());
  if (!doc.is_object()) return fail("JWKS is not a JSON object");
  const auto* keys = doc.as_object().if_contains("keys");
  if (keys == nullptr || !keys->is_array()) return fail("JWKS has no 'keys' array");
  if (keys->as_array().size() > opt.max_keys)
    return fail("JWKS has more than " + std::to_string(opt.max_keys) + " keys");
  std::size_t i = 0;
  for (const json::value& v : keys->as_array()) {
    std::string where = "keys[" + std::to_string(i++) + "]";
    if (!v.is_object()) return fail(where + " is not an object");
    const json::object& o = v.as_object();
    std::string error;
    Jwk k{o, where, &error};
    std::string kid;
    if (auto id = k.text("kid")) {
      kid = std::string(*id);
      k.where += " (kid '" + kid + "')";
    }
    const auto kty = k.text("kty");
    const auto use = k.text("use");
    const auto alg_name_v = k.text("alg");
    if (!error.empty()) return fail(error);
    if (!kty) return fail(k.where + " has no 'kty'");
    // Encryption keys, and keys whose key_ops leave out "verify", are not ours.
    if (use && *use != "sig") {
      ++r.skipped;
      continue;
    }
    if (const auto* ops = o.if_contains("key_ops")) {
      bool verify = false;
      if (ops->is_array())
        for (const auto& op : ops->as_array()) verify |= op.is_string() && op.as_string() == "verify";
      if (!verify) {
        ++r.skipped;
        continue;
      }
    }
    std::optional<Alg> only;
    if (alg_name_v) {
      only = alg_from_name(*alg_name_v);
      if (!only) {
        // An algorithm we do not verify (RSA-OAEP, ES512, none...): the key cannot serve us.
        ++r.skipped;
        continue;
      }
    }
    EVP_PKEY* pkey = nullptr;
    if (*kty == "RSA") {
      pkey = rsa_key(k);
    } else if (*kty == "EC") {
      const auto crv = k.text("crv");
      if (!error.empty()) return fail(error);
      if (!crv) return fail(k.where + ": EC key without 'crv'");
      if (*crv != "P-256" && *crv != "P-384") {
        ++r.skipped;  // P-521, secp256k1: not ours
        continue;
      }
      pkey = ec_key(k, *crv);
    } else if (*kty == "OKP") {
      const auto crv = k.text("crv");
      if (!error.empty()) return fail(error);
      if (!crv) return fail(k.where + ": OKP key without 'crv'");
      if (*crv != "Ed25519") {
        ++r.skipped;  // Ed448, X25519 (not a signature key)
        continue;
      }
      pkey = ed25519_key(k);
    } else if (*kty == "oct") {
      if (!opt.allow_oct) return fail(k.where + ": symmetric ('oct') keys are not accepted here");
      const auto secret = k.bytes("k");
      if (!secret) return fail(error);
      if (secret->size() < 32) return fail(k.where + ": 'k' must be at least 32 bytes (RFC 7518 3.2)");
      if (only && *only != Alg::HS256 && *only != Alg::HS384 && *only != Alg::HS512)
        return fail(k.where + ": alg " + std::string(*alg_name_v) + " does not fit an oct key");
      r.keys.push_back(Key::secret(*secret, kid, only));
      continue;
    } else {
      ++r.skipped;
      continue;
    }
    if (pkey == nullptr) return fail(error.empty() ? k.where + ": bad key" : error);
    auto key = Key::adopt(pkey, kid, only, &error);
    if (!key) return fail(k.where + ": " + error);
    r.keys.push_back(std::move(key));
  }
  return r;
}

}  // namespace weir::jose
