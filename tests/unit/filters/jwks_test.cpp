#include "filters/jwt/jwks.h"

#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include <string>

#include "config/config.h"
#include "filters/jwt/https_fetch.h"
#include "filters/jwt/jwt_filter.h"

std::string jose_test_b64url(std::string_view in);  // jose_test.cpp

namespace weir::jose {
namespace {

// RFC 7517 appendix A.1 (the EC key is for encryption: skipped).
const char* kRfc7517A1 = R"({"keys":[
  {"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
   "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","use":"enc","kid":"1"},
  {"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
   "e":"AQAB","alg":"RS256","kid":"2011-04-29"}]})";

TEST(Jwks, Rfc7517AppendixA1PublicKeys) {
  const auto r = parse_jwks(kRfc7517A1);
  ASSERT_EQ(r.error, "");
  ASSERT_EQ(r.keys.size(), 1u);
  EXPECT_EQ(r.skipped, 1u);  // "use":"enc"
  EXPECT_EQ(r.keys[0]->kid(), "2011-04-29");
  EXPECT_TRUE(r.keys[0]->allows(Alg::RS256));
  EXPECT_FALSE(r.keys[0]->allows(Alg::PS256));  // "alg" restricts the key
  EXPECT_FALSE(r.keys[0]->allows(Alg::HS256));

  // The same EC key published for signatures is an ES256 key.
  std::string sig = kRfc7517A1;
  sig.replace(sig.find("\"enc\""), 5, "\"sig\"");
  const auto r2 = parse_jwks(sig);
  ASSERT_EQ(r2.error, "");
  ASSERT_EQ(r2.keys.size(), 2u);
  EXPECT_EQ(r2.keys[0]->kid(), "1");
  EXPECT_TRUE(r2.keys[0]->allows(Alg::ES256));
  EXPECT_FALSE(r2.keys[0]->allows(Alg::ES384));
}

TEST(Jwks, Rfc8037Ed25519KeyVerifiesTheAppendixA4Signature) {
  const auto r = parse_jwks(R"({"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]})");
  ASSERT_EQ(r.error, "");
  ASSERT_EQ(r.keys.size(), 1u);
  const std::string jws =
      "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
      "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
  Failure why;
  const auto v = verify(jws, r.keys, {}, 8192, why);
  ASSERT_TRUE(v) << why.reason;
  EXPECT_EQ(v->alg, Alg::EdDSA);
  EXPECT_EQ(v->payload_json, "Example of Ed25519 signing");
  std::string bad = jws;
  bad[bad.size() - 3] = bad[bad.size() - 3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verify(bad, r.keys, {}, 8192, why));
  EXPECT_EQ(why.reason, "bad signature");
}

std::string sign(EVP_PKEY* key, const std::string& input, const EVP_MD* md) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestSignInit(ctx, nullptr, md, nullptr, key);
  std::size_t n = 0;
  EVP_DigestSign(ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(input.data()), input.size());
  std::string sig(n, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &n,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  sig.resize(n);
  EVP_MD_CTX_free(ctx);
  return sig;
}

std::string bn_b64(EVP_PKEY* k, const char* name) {
  BIGNUM* bn = nullptr;
  EVP_PKEY_get_bn_param(k, name, &bn);
  std::string out(static_cast<std::size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return jose_test_b64url(out);
}

TEST(Jwks, TokensMintedWithKeysOfTheSetVerify) {
  EVP_PKEY* rsa = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  EVP_PKEY* ec = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  unsigned char point[65];
  std::size_t plen = 0;
  EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point, &plen);
  ASSERT_EQ(plen, 65u);
  const std::string x = jose_test_b64url(std::string_view(reinterpret_cast<char*>(point + 1), 32));
  const std::string y = jose_test_b64url(std::string_view(reinterpret_cast<char*>(point + 33), 32));
  const std::string doc = R"({"keys":[{"kty":"RSA","kid":"r1","use":"sig","n":")" + bn_b64(rsa, OSSL_PKEY_PARAM_RSA_N) +
                          R"(","e":")" + bn_b64(rsa, OSSL_PKEY_PARAM_RSA_E) +
                          R"("},{"kty":"EC","crv":"P-256","kid":"e1","x":")" + x + R"(","y":")" + y +
                          R"("},{"kty":"EC","crv":"P-521","kid":"big","x":"AA","y":"AA"},)"
                          R"({"kty":"RSA-PQ","kid":"future"}]})";
  const auto r = parse_jwks(doc);
  ASSERT_EQ(r.error, "");
  ASSERT_EQ(r.keys.size(), 2u);
  EXPECT_EQ(r.skipped, 2u);  // P-521 and an unknown kty

  const std::string rs_input = jose_test_b64url(R"({"alg":"RS256","kid":"r1"})") + "." + jose_test_b64url(R"({"sub":"a"})");
  Failure why;
  const auto v = verify(rs_input + "." + jose_test_b64url(sign(rsa, rs_input, EVP_sha256())), r.keys, {}, 8192, why);
  ASSERT_TRUE(v) << why.reason;
  EXPECT_EQ(v->kid, "r1");

  const std::string es_input = jose_test_b64url(R"({"alg":"ES256","kid":"e1"})") + "." + jose_test_b64url(R"({"sub":"b"})");
  const std::string der = sign(ec, es_input, EVP_sha256());
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  std::string raw(64, '\0');
  BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data() + 32), 32);
  ECDSA_SIG_free(es);
  EXPECT_TRUE(verify(es_input + "." + jose_test_b64url(raw), r.keys, {}, 8192, why)) << why.reason;

  // A kid the set does not have: refused as such (the filter may refetch).
  const std::string other = jose_test_b64url(R"({"alg":"RS256","kid":"r2"})") + "." + jose_test_b64url("{}");
  EXPECT_FALSE(verify(other + "." + jose_test_b64url(sign(rsa, other, EVP_sha256())), r.keys, {}, 8192, why));
  EXPECT_EQ(why.reason, "unknown key id");
  EXPECT_TRUE(why.no_key);
  EVP_PKEY_free(rsa);
  EVP_PKEY_free(ec);
}

TEST(Jwks, BadDocumentsSayWhy) {
  const std::string x32 = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
  const struct {
    std::string doc, error;
  } cases[] = {
      {"", "JWKS is not JSON"},
      {"{\"keys\":[", "JWKS is not JSON"},
      {"[]", "JWKS is not a JSON object"},
      {"{}", "JWKS has no 'keys' array"},
      {R"({"keys":{}})", "JWKS has no 'keys' array"},
      {R"({"keys":[1]})", "keys[0] is not an object"},
      {R"({"keys":[{"kid":"a"}]})", "keys[0] (kid 'a') has no 'kty'"},
      {R"({"keys":[{"kty":7}]})", "keys[0]: 'kty' is not a string"},
      {R"({"keys":[{"kty":"RSA","e":"AQAB"}]})", "keys[0]: 'n' is missing or not a string"},
      {R"({"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]})", "keys[0]: 'n' is not base64url"},
      {R"({"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]})", "keys[0]: not a valid RSA public key"},
      {R"({"keys":[{"kty":"EC","x":"AA","y":"AA"}]})", "keys[0]: EC key without 'crv'"},
      {R"({"keys":[{"kty":"EC","crv":"P-256","x":")" + x32 + R"(","y":"AA"}]})", "must be 32 bytes for P-256"},
      {R"({"keys":[{"kty":"EC","crv":"P-256","x":")" + x32 + R"(","y":")" + x32 + R"("}]})", "not a point on P-256"},
      {R"({"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]})", "'x' must be 32 bytes for Ed25519"},
      {R"({"keys":[{"kty":"OKP","crv":"Ed25519","alg":"RS256","x":")" + x32 + R"("}]})",
       "alg RS256 does not fit this key type"},
      {R"({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})", "symmetric ('oct') keys are not accepted here"},
  };
  for (const auto& c : cases) {
    const auto r = parse_jwks(c.doc);
    EXPECT_NE(r.error.find(c.error), std::string::npos) << c.doc << " -> " << r.error;
    EXPECT_TRUE(r.keys.empty()) << c.doc;
  }
  // More than the limit, or larger than it.
  std::string many = "{\"keys\":[";
  for (int i = 0; i < 101; ++i) many += std::string(i ? "," : "") + R"({"kty":"x"})";
  EXPECT_EQ(parse_jwks(many + "]}").error, "JWKS has more than 100 keys");
  JwksOptions small;
  small.max_bytes = 10;
  EXPECT_EQ(parse_jwks(kRfc7517A1, small).error, "JWKS larger than 10 bytes");
  // oct keys when allowed: at least 32 bytes, an HS algorithm only.
  JwksOptions oct;
  oct.allow_oct = true;
  const std::string k32 = jose_test_b64url(std::string(32, 'k'));
  EXPECT_EQ(parse_jwks(R"({"keys":[{"kty":"oct","k":")" + k32 + R"(","alg":"HS384"}]})", oct).keys.size(), 1u);
  EXPECT_NE(parse_jwks(R"({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})", oct).error.find("at least 32 bytes"),
            std::string::npos);
}

TEST(Jwks, HttpsUrls) {
  std::string err;
  auto u = fetch::parse_https_url("https://idp.example/.well-known/jwks.json?x=1", &err);
  ASSERT_TRUE(u) << err;
  EXPECT_EQ(u->host, "idp.example");
  EXPECT_EQ(u->port, "443");
  EXPECT_EQ(u->target, "/.well-known/jwks.json?x=1");
  u = fetch::parse_https_url("https://[::1]:8443", &err);
  ASSERT_TRUE(u) << err;
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "8443");
  EXPECT_EQ(u->target, "/");
  for (const char* bad : {"http://idp/jwks", "https://", "https://u:p@idp/", "https://idp:0/", "https://idp:99999/",
                          "https://idp/a b", "https://idp/#frag", "ftp://idp"}) {
    EXPECT_FALSE(fetch::parse_https_url(bad, &err)) << bad;
  }
}

}  // namespace
}  // namespace weir::jose

namespace weir::filters {
namespace {

std::string config_error(const std::string& keys) {
  try {
    config::load_string("listeners: [{address: 127.0.0.1, port: 0}]\nroutes:\n  - upstreams: [echo]\n    jwt:\n"
                        "      keys: " + keys + "\n",
                        "t.yaml");
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(JwtFilter, JwksConfigErrorsNameTheLine) {
  EXPECT_NE(config_error("[{jwks: http://idp/jwks}]").find("t.yaml:5:"), std::string::npos);
  EXPECT_NE(config_error("[{jwks: http://idp/jwks}]").find("must be an https:// URL"), std::string::npos);
  EXPECT_NE(config_error("[{jwks: https://idp/jwks, kid: a}]").find("a JWKS names its own keys' kids"),
            std::string::npos);
  EXPECT_NE(config_error("[{jwks: https://idp/jwks, refresh: 100ms}]").find("from 1s to 7d"), std::string::npos);
  EXPECT_NE(config_error("[{jwks: https://idp/jwks, ca: /nonexistent/ca.pem}]").find("cannot load CA bundle"),
            std::string::npos);
  EXPECT_NE(config_error("[{secret: " + std::string(32, 's') + ", refresh: 1m}]").find("only goes with 'jwks'"),
            std::string::npos);
  EXPECT_NE(config_error("[{secret: " + std::string(32, 's') + ", jwks: https://idp/}]").find("exactly one of"),
            std::string::npos);
  EXPECT_EQ(config_error("[{jwks: https://idp.example/jwks, refresh: 5m, timeout: 2s, min_refetch: 10s}]"), "");
}

TEST(JwtFilter, OneJwksSourcePerUrlWhileAlive) {
  const auto load = [] {
    return config::load_string(
        "listeners: [{address: 127.0.0.1, port: 0}]\nroutes:\n"
        "  - {name: a, match: {path: /a}, upstreams: [echo], jwt: {keys: [{jwks: https://idp.example/jwks}]}}\n"
        "  - {name: b, match: {path: /b}, upstreams: [echo], jwt: {keys: [{jwks: https://idp.example/jwks}]}}\n"
        "  - {name: c, match: {path: /c}, upstreams: [echo], jwt: {keys: [{jwks: https://idp.example/jwks, timeout: 1s}]}}\n",
        "t.yaml");
  };
  const auto cfg = load();
  auto source = [&cfg](std::size_t r) {
    return dynamic_cast<const JwtFilter&>(*cfg.routes[r].filters[0]).settings().sources.at(0);
  };
  EXPECT_EQ(source(0), source(1));
  EXPECT_NE(source(0), source(2));  // other options
  EXPECT_EQ(source(0)->keys(), nullptr);  // nothing fetched: parsing never starts a fetch
  EXPECT_EQ(source(0)->fetches(), 0u);
}

}  // namespace
}  // namespace weir::filters
