#include "filters/jwt/jose.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>

#include <memory>
#include <optional>
#include <string>

#include <openssl/hmac.h>

#include "config/config.h"
#include "support/test_support.h"
#include "filters/jwt/jwt_filter.h"
#include "core/worker.h"
#include "http/head.h"


std::string jose_test_b64url(std::string_view in) {
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

namespace weir::jose {
namespace {

std::string b64url(std::string_view in) { return jose_test_b64url(in); }

// A key pair made here, its public half as PEM, and a signer for tokens.
struct Pair {
  EVP_PKEY* key = nullptr;
  explicit Pair(const char* type, const char* curve = nullptr) {
    if (curve) key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve);
    else if (std::string(type) == "RSA") key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
    else key = EVP_PKEY_Q_keygen(nullptr, nullptr, type);
  }
  ~Pair() { EVP_PKEY_free(key); }
  std::string pem() const {
    BIO* b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, key);
    char* p = nullptr;
    const long n = BIO_get_mem_data(b, &p);
    std::string s(p, static_cast<std::size_t>(n));
    BIO_free(b);
    return s;
  }
  std::string sign(const std::string& input, const EVP_MD* md, bool pss = false, std::size_t ec_half = 0) const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = nullptr;
    EVP_DigestSignInit(ctx, &pctx, md, nullptr, key);
    if (pss) {
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    std::size_t n = 0;
    EVP_DigestSign(ctx, nullptr, &n, reinterpret_cast<const unsigned char*>(input.data()), input.size());
    std::string sig(n, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &n,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    sig.resize(n);
    EVP_MD_CTX_free(ctx);
    if (ec_half == 0) return sig;
    // DER -> R||S
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string raw(2 * ec_half, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(ec_half));
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data() + ec_half),
                 static_cast<int>(ec_half));
    ECDSA_SIG_free(es);
    return raw;
  }
};

TEST(Jose, Rfc7515AppendixA1Hs256) {
  // The RFC's own example: key, token and verdict.
  const auto k = base64url_decode(
      "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow");
  ASSERT_TRUE(k);
  const std::string t =
      "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
      "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
      "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  Failure why;
  const auto v = verify(t, {Key::secret(*k)}, {}, 8192, why);
  ASSERT_TRUE(v) << why.reason;
  EXPECT_NE(v->payload_json.find("\"iss\":\"joe\""), std::string::npos);
  std::string bad = t;
  const auto sig_at = bad.rfind('.') + 1;
  bad[sig_at] = bad[sig_at] == 'd' ? 'e' : 'd';  // one bit of the signature's first byte
  EXPECT_FALSE(verify(bad, {Key::secret(*k)}, {}, 8192, why));
  EXPECT_EQ(why.reason, "bad signature");
}

TEST(Jose, EveryAsymmetricAlgorithmVerifiesWithItsKeyOnly) {
  struct Case {
    const char* alg;
    const char* type;
    const char* curve;
    const EVP_MD* md;
    bool pss;
    std::size_t half;
  };
  const Case cases[] = {{"RS256", "RSA", nullptr, EVP_sha256(), false, 0}, {"RS512", "RSA", nullptr, EVP_sha512(), false, 0},
                        {"PS256", "RSA", nullptr, EVP_sha256(), true, 0},   {"PS384", "RSA", nullptr, EVP_sha384(), true, 0},
                        {"ES256", "EC", "P-256", EVP_sha256(), false, 32},  {"ES384", "EC", "P-384", EVP_sha384(), false, 48},
                        {"EdDSA", "ED25519", nullptr, nullptr, false, 0}};
  for (const auto& c : cases) {
    Pair p(c.type, c.curve);
    std::string err;
    const auto key = Key::pem(p.pem(), "", &err);
    ASSERT_TRUE(key) << c.alg << ": " << err;
    const std::string header = std::string("{\"alg\":\"") + c.alg + "\"}";
    const std::string payload = "{\"sub\":\"u1\"}";
    const std::string input = b64url(header) + "." + b64url(payload);
    const std::string t = input + "." + b64url(p.sign(input, c.md, c.pss, c.half));
    Failure why;
    EXPECT_TRUE(verify(t, {key}, {}, 8192, why)) << c.alg << ": " << why.reason;
    // Another key of the same kind does not verify it.
    Pair other(c.type, c.curve);
    EXPECT_FALSE(verify(t, {Key::pem(other.pem(), "", &err)}, {}, 8192, why)) << c.alg;
  }
}

TEST(Jose, NoneAndAlgorithmConfusionAreRefused) {
  Pair rsa("RSA");
  std::string err;
  const auto pub = Key::pem(rsa.pem(), "", &err);
  Failure why;
  // alg none, no signature.
  EXPECT_FALSE(verify(b64url("{\"alg\":\"none\"}") + "." + b64url("{}") + ".", {pub}, {}, 8192, why));
  EXPECT_EQ(why.reason, "algorithm not allowed: none");
  // HS256 signed with the RSA public key's PEM as the HMAC secret: the RSA
  // key never verifies an HS token.
  const std::string input = b64url("{\"alg\":\"HS256\"}") + "." + b64url("{}");
  const std::string pem = rsa.pem();
  unsigned char mac[32];
  unsigned int n = 0;
  HMAC(EVP_sha256(), pem.data(), static_cast<int>(pem.size()), reinterpret_cast<const unsigned char*>(input.data()),
       input.size(), mac, &n);
  EXPECT_FALSE(verify(input + "." + b64url(std::string(reinterpret_cast<char*>(mac), n)), {pub}, {}, 8192, why));
  EXPECT_EQ(why.reason, "no key for this algorithm");
  // An algorithm the route does not allow.
  const auto secret = Key::secret(std::string(32, 'k'));
  EXPECT_FALSE(verify(input + ".AA", {secret}, {Alg::HS512}, 8192, why));
  EXPECT_EQ(why.reason, "algorithm not allowed: HS256");
}

TEST(Jose, MalformedTokensSayWhy) {
  const auto secret = Key::secret(std::string(32, 'k'));
  Failure why;
  EXPECT_FALSE(verify("abc", {secret}, {}, 8192, why));
  EXPECT_NE(why.reason.find("three"), std::string::npos);
  EXPECT_FALSE(verify("a.b.c.d", {secret}, {}, 8192, why));
  EXPECT_FALSE(verify("@@.e30.", {secret}, {}, 8192, why));
  EXPECT_NE(why.reason.find("base64url"), std::string::npos);
  EXPECT_FALSE(verify(b64url("[1]") + ".e30.", {secret}, {}, 8192, why));
  EXPECT_EQ(why.reason, "malformed token header");
  EXPECT_FALSE(verify(std::string(9000, 'a'), {secret}, {}, 8192, why));
  EXPECT_EQ(why.reason, "token too large");
  const std::string kid = b64url("{\"alg\":\"HS256\",\"kid\":\"other\"}") + ".e30.";
  EXPECT_FALSE(verify(kid, {Key::secret(std::string(32, 'k'), "mine")}, {}, 8192, why));
  EXPECT_EQ(why.reason, "unknown key id");
  EXPECT_FALSE(base64url_decode("a"));
  EXPECT_FALSE(base64url_decode("ab=="));
}

}  // namespace
}  // namespace weir::jose

namespace weir::filters {
namespace {

std::string sign_hs256(const std::string& secret, const std::string& payload) { return test::hs256(secret, payload); }

TEST(JwtFilter, ClaimsAreCheckedWithSkewAndTheTokenIsStripped) {
  const std::string secret(32, 's');
  const auto cfg = config::load_string(
      "listeners: [{address: 127.0.0.1, port: 0}]\n"
      "routes:\n"
      "  - upstreams: [echo]\n"
      "    jwt:\n"
      "      keys: [{secret: " + secret + "}]\n"
      "      issuer: https://idp\n"
      "      audience: chat\n"
      "      clock_skew: 10s\n"
      "      from: [subprotocol, header]\n"
      "      claims_to_headers: [{claim: sub, header: X-User-Id}]\n",
      "t.yaml");
  const auto* f = dynamic_cast<const JwtFilter*>(cfg.routes[0].filters[0].get());
  ASSERT_NE(f, nullptr);
  core::Worker worker(0, 4096);
  const std::int64_t now = 1'800'000'000'000;  // ms
  struct Run {
    std::string raw;
    http::Head head;
    std::optional<HandshakeContext> ctx;
    HandshakeVerdict v;
  };
  auto run = [&](const std::string& payload) {
    auto r = std::make_unique<Run>();
    r->raw = "GET /?x=1 HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Protocol: chat, bearer." + sign_hs256(secret, payload) +
             "\r\n\r\n";
    std::string err;
    http::parse_request_head(r->raw, 8192, r->head, &err);
    r->ctx.emplace(HandshakeContext{r->head, "127.0.0.1", "", cfg.routes[0], worker});
    r->v = f->check(*r->ctx, now);
    return r;
  };
  using K = HandshakeVerdict::Kind;
  auto ok = run(R"({"sub":"alice","iss":"https://idp","aud":["x","chat"],"exp":1800000100})");
  ASSERT_EQ(ok->v.kind, K::proceed) << ok->v.reason;
  EXPECT_EQ(ok->ctx->user, "alice");
  ASSERT_EQ(ok->ctx->rewrite_headers.size(), 2u);
  EXPECT_EQ(ok->ctx->rewrite_headers[0].name, "X-User-Id");
  EXPECT_EQ(ok->ctx->rewrite_headers[0].value, "alice");
  EXPECT_EQ(ok->ctx->rewrite_headers[1].name, "Sec-WebSocket-Protocol");
  EXPECT_EQ(ok->ctx->rewrite_headers[1].value, "chat");  // the token is gone, the rest is offered on
  EXPECT_GT(ok->ctx->deadline_ms, 0);
  EXPECT_EQ(run(R"({"iss":"https://idp","aud":"chat","exp":1799999995})")->v.kind, K::proceed);  // within the skew
  auto expired = run(R"({"iss":"https://idp","aud":"chat","exp":1799999990})");
  EXPECT_EQ(expired->v.status, 401u);
  EXPECT_EQ(expired->v.reason, "token expired");
  ASSERT_FALSE(expired->v.headers.empty());
  EXPECT_NE(expired->v.headers[0].value.find("error=\"invalid_token\""), std::string::npos);
  EXPECT_EQ(run(R"({"iss":"https://idp","aud":"chat","nbf":1800000011})")->v.reason, "token not valid yet");
  EXPECT_EQ(run(R"({"iss":"https://idp","aud":"chat","iat":1800000011})")->v.reason, "token issued in the future");
  EXPECT_EQ(run(R"({"iss":"https://evil","aud":"chat"})")->v.reason, "wrong issuer");
  EXPECT_EQ(run(R"({"iss":"https://idp","aud":"other"})")->v.reason, "wrong audience");
  EXPECT_EQ(run(R"({"iss":"https://idp","aud":"chat","exp":"soon"})")->v.reason, "exp, nbf and iat must be numbers");
}

TEST(JwtFilter, ConfigRefusesWeakSecretsAndNone) {
  auto error_of = [](const std::string& jwt) {
    try {
      config::load_string("listeners: [{address: 127.0.0.1, port: 0}]\nroutes:\n  - upstreams: [echo]\n    jwt: " +
                              jwt + "\n",
                          "t.yaml");
    } catch (const config::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of("{keys: [{secret: short}]}").find("at least 32 bytes"), std::string::npos);
  EXPECT_NE(error_of("{keys: [{secret: " + std::string(32, 'k') + "}], algorithms: [none]}").find("none is never allowed"),
            std::string::npos);
  EXPECT_NE(error_of("{keys: [{pem: nope}]}").find("not a PEM public key"), std::string::npos);
  EXPECT_NE(error_of("{keys: []}").find("at least one key"), std::string::npos);
}

}  // namespace
}  // namespace weir::filters
