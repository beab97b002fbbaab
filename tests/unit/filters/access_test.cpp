// Access control beyond the JOSE layer: claims (duplicate names, paths),
// revocations, authz rules, origin wildcards, the jwt filter's in-band refresh.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <memory>
#include <optional>
#include <string>

#include "config/config.h"
#include "core/worker.h"
#include "filters/authz/authz.h"
#include "filters/claims.h"
#include "filters/ip_policy/ip_policy.h"
#include "filters/jwt/jwt_filter.h"
#include "filters/origin/origin_filter.h"
#include "http/head.h"
#include "state/revocations.h"
#include "support/test_support.h"


namespace weir::filters {
namespace {

using test::config_error;
using test::hs256;


const std::string kHead = "listeners: [{address: 127.0.0.1, port: 0}]\nroutes:\n  - upstreams: [echo]\n";

TEST(Claims, NumbersOutOfIntegerRangeAndNaN) {
  std::string err;
  // 0e660000000 reads as 0 x inf, NaN (found by fuzz_jwt): not a number of seconds.
  auto c = Claims::parse(R"({"exp":0E000660000000,"big":6.6e22,"neg":-6.6e22,"n":1.9})", &err);
  ASSERT_NE(c, nullptr) << err;
  bool bad = false;
  EXPECT_FALSE(c->number("exp", &bad));
  EXPECT_TRUE(bad);
  bad = false;
  EXPECT_EQ(c->number("big", &bad), INT64_MAX);
  EXPECT_EQ(c->number("neg", &bad), INT64_MIN);
  EXPECT_EQ(c->number("n", &bad), 1);
  EXPECT_FALSE(bad);
}

TEST(Claims, DuplicateNamesAreRefusedAtAnyDepth) {
  std::string err;
  EXPECT_EQ(Claims::parse(R"({"sub":"alice","sub":"admin"})", &err), nullptr);
  EXPECT_EQ(err, "duplicate claim 'sub'");
  EXPECT_EQ(Claims::parse(R"({"a":{"roles":[1],"roles":[2]}})", &err), nullptr);
  EXPECT_EQ(err, "duplicate claim 'roles'");
  // The same name in two different objects is fine, and so are escapes that
  // spell two different names.
  EXPECT_NE(Claims::parse(R"({"a":{"x":1},"b":{"x":1},"x":1,"x\u0031":2})", &err), nullptr) << err;
  // Escaped spellings of one name are one name.
  EXPECT_EQ(Claims::parse(R"({"sub":"a","s\u0075b":"b"})", &err), nullptr);
  EXPECT_EQ(Claims::parse(R"([1,2])", &err), nullptr);
  EXPECT_EQ(err, "claims are not a JSON object");
  EXPECT_EQ(Claims::parse(R"({"a":)", &err), nullptr);
  EXPECT_EQ(err, "claims are not JSON");
  std::string deep(40, '[');
  EXPECT_EQ(Claims::parse("{\"a\":" + deep + std::string(40, ']') + "}", &err), nullptr);
}

TEST(Claims, PathsNumbersAndStringLists) {
  std::string err;
  const auto c = Claims::parse(
      R"({"sub":"alice","n":42,"big":1e300,"realm_access":{"roles":["admin","x",3]},"scope":"chat:read  chat:write",
          "a.b":"dotted","exp":"soon"})",
      &err);
  ASSERT_NE(c, nullptr) << err;
  EXPECT_EQ(c->text("sub"), "alice");
  EXPECT_EQ(c->text("n"), "42");
  EXPECT_EQ(c->text("realm_access"), std::nullopt);
  EXPECT_EQ(c->text("a.b"), "dotted");  // a member named with a dot is found whole
  EXPECT_EQ(c->strings("realm_access.roles"), (std::vector<std::string>{"admin", "x"}));
  EXPECT_EQ(c->strings("scope"), (std::vector<std::string>{"chat:read", "chat:write"}));
  EXPECT_TRUE(c->strings("realm_access.nope").empty());
  EXPECT_TRUE(c->strings("sub.deeper").empty());
  bool bad = false;
  EXPECT_EQ(c->number("n", &bad), 42);
  EXPECT_EQ(c->number("big", &bad), INT64_MAX);  // clamped, never undefined
  EXPECT_FALSE(bad);
  EXPECT_EQ(c->number("exp", &bad), std::nullopt);
  EXPECT_TRUE(bad);
  EXPECT_EQ(c->number("missing", &bad), std::nullopt);
}

TEST(Revocations, BySubjectOrTokenIdUntilTheirEnd) {
  state::Revocations r;
  EXPECT_FALSE(r.revoked("alice", "", 1000));
  ASSERT_TRUE(r.add(state::Revocations::Kind::subject, "alice", 5000, 1000));
  ASSERT_TRUE(r.add(state::Revocations::Kind::token_id, "t-1", 3000, 1000));
  EXPECT_TRUE(r.revoked("alice", "", 4999));
  EXPECT_FALSE(r.revoked("alice", "", 5000));
  EXPECT_FALSE(r.revoked("bob", "", 2000));
  EXPECT_TRUE(r.revoked("bob", "t-1", 2000));
  EXPECT_FALSE(r.revoked("", "", 2000));  // empty matches nothing
  // A second add keeps the later end; expired entries are dropped on the way.
  ASSERT_TRUE(r.add(state::Revocations::Kind::subject, "alice", 2000, 1000));
  EXPECT_TRUE(r.revoked("alice", "", 4000));
  ASSERT_TRUE(r.add(state::Revocations::Kind::subject, "carol", 9000, 6000));
  const auto list = r.list(6000);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].value, "carol");
}

TEST(Authz, AnyOfAllOfOnClaimsAndTheCertificateSubject) {
  const auto cfg = config::load_string(
      kHead +
          "    jwt: {keys: [{secret: " + std::string(32, 's') + "}]}\n"
          "    authz:\n"
          "      - {claim: realm_access.roles, any_of: [admin, support]}\n"
          "      - {claim: scope, all_of: ['chat:read', 'chat:write']}\n",
      "t.yaml");
  ASSERT_EQ(cfg.routes[0].filters.size(), 2u);
  const auto* f = dynamic_cast<const AuthzFilter*>(cfg.routes[0].filters[1].get());
  ASSERT_NE(f, nullptr);
  std::string err;
  auto claims = [&](const char* json) { return Claims::parse(json, &err); };
  EXPECT_EQ(f->check(claims(R"({"realm_access":{"roles":["support"]},"scope":"chat:write chat:read"})").get(), nullptr), "");
  EXPECT_EQ(f->check(claims(R"({"realm_access":{"roles":["user"]},"scope":"chat:write chat:read"})").get(), nullptr),
            "forbidden: claim realm_access.roles has none of admin, support");
  EXPECT_EQ(f->check(claims(R"({"realm_access":{"roles":["admin"]},"scope":"chat:read"})").get(), nullptr),
            "forbidden: claim scope lacks chat:write");
  EXPECT_EQ(f->check(claims(R"({"realm_access":{"roles":"admin"},"scope":["chat:read","chat:write"]})").get(), nullptr),
            "");
  EXPECT_NE(f->check(nullptr, nullptr), "");

  const auto mtls = config::load_string(kHead + "    authz: [{cert: subject, any_of: ['CN=ops,O=Example']}]\n", "t.yaml");
  const auto* m = dynamic_cast<const AuthzFilter*>(mtls.routes[0].filters[0].get());
  ASSERT_NE(m, nullptr);
  const net::CertIdentity ops{"CN=ops,O=Example", "ops", {}, {}, {}}, eve{"CN=eve,O=Example", "eve", {}, {}, {}};
  EXPECT_EQ(m->check(nullptr, &ops), "");
  EXPECT_EQ(m->check(nullptr, &eve), "forbidden: the client certificate subject has none of CN=ops,O=Example");
  EXPECT_NE(m->check(nullptr, nullptr), "");
  const net::CertIdentity none;
  EXPECT_NE(m->check(nullptr, &none), "");
}

TEST(Authz, ClientCertificateCnAndSans) {
  const auto cfg = config::load_string(kHead +
                                           "    authz:\n"
                                           "      - client_cert:\n"
                                           "          subject_cn_any_of: [ops, '*.ops.example']\n"
                                           "          san_any_of: ['*.svc.example', 'spiffe://example/ns/chat', 'me@example.com']\n",
                                       "t.yaml");
  const auto* f = dynamic_cast<const AuthzFilter*>(cfg.routes[0].filters[0].get());
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->needs(), "");
  auto cert = [](std::string cn, std::vector<std::string> dns = {}, std::vector<std::string> uri = {},
                 std::vector<std::string> email = {}) {
    return net::CertIdentity{"CN=" + cn, cn, std::move(dns), std::move(uri), std::move(email)};
  };
  auto ok = [&](const net::CertIdentity& c) { return f->check(nullptr, &c).empty(); };
  EXPECT_TRUE(ok(cert("ops")));
  EXPECT_TRUE(ok(cert("OPS")));                  // names are case-insensitive
  EXPECT_TRUE(ok(cert("a.ops.example")));
  EXPECT_FALSE(ok(cert("a.b.ops.example")));     // one label, as in TLS
  EXPECT_FALSE(ok(cert("ops.example")));
  EXPECT_FALSE(ok(cert("xops")));
  EXPECT_TRUE(ok(cert("someone", {"other.example", "chat.svc.example"})));
  EXPECT_FALSE(ok(cert("someone", {"svc.example", "a.b.svc.example"})));
  EXPECT_TRUE(ok(cert("someone", {}, {"spiffe://example/ns/chat"})));
  EXPECT_FALSE(ok(cert("someone", {}, {"spiffe://example/ns/chat/x", "SPIFFE://example/ns/chat"})));
  // Wildcards are for DNS names: a URI or email SAN matches exactly.
  EXPECT_FALSE(ok(cert("someone", {}, {"spiffe://x.svc.example"}, {"x.svc.example"})));
  EXPECT_TRUE(ok(cert("someone", {}, {}, {"me@example.com"})));
  // A SAN list entry never matches the CN, nor a CN entry a SAN.
  EXPECT_FALSE(ok(cert("me@example.com", {"ops"})));
  const auto no = cert("eve", {"eve.example"});
  EXPECT_EQ(f->check(nullptr, &no),
            "forbidden: the client certificate has no subject CN one of ops, *.ops.example or SAN one of "
            "*.svc.example, spiffe://example/ns/chat, me@example.com");
  EXPECT_EQ(f->check(nullptr, nullptr), "forbidden: client certificate required");
  const net::CertIdentity none;
  EXPECT_EQ(f->check(nullptr, &none), "forbidden: client certificate required");

  auto err = [](const std::string& rule) { return config_error(kHead + "    authz:\n      - " + rule + "\n"); };
  EXPECT_NE(err("client_cert: {}").find("needs 'subject_cn_any_of' or 'san_any_of'"), std::string::npos);
  EXPECT_NE(err("client_cert: {san_any_of: []}").find("at least one value"), std::string::npos);
  EXPECT_NE(err("client_cert: {san_any_of: ['a.*.example']}").find("t.yaml:5:36:"), std::string::npos)
      << err("client_cert: {san_any_of: ['a.*.example']}");
  EXPECT_NE(err("{client_cert: {san_any_of: [a]}, any_of: [b]}").find("does not go with 'client_cert'"),
            std::string::npos);
  EXPECT_NE(err("{client_cert: {san_any_of: [a]}, cert: subject}").find("exactly one of"), std::string::npos);
  EXPECT_NE(err("client_cert: {sans: [a]}").find("sans"), std::string::npos);
}

TEST(Authz, ConfigErrors) {
  EXPECT_NE(config_error(kHead + "    authz: [{claim: roles, any_of: [a]}]\n").find("t.yaml:4:5: 'authz' needs 'jwt' or 'introspection' on the same route"),
            std::string::npos)
      << config_error(kHead + "    authz: [{claim: roles, any_of: [a]}]\n");
  EXPECT_NE(config_error(kHead + "    authz: [{claim: roles}]\n").find("needs 'any_of' or 'all_of'"), std::string::npos);
  EXPECT_NE(config_error(kHead + "    authz: [{claim: roles, cert: subject, any_of: [a]}]\n").find("exactly one of"),
            std::string::npos);
  EXPECT_NE(config_error(kHead + "    authz: [{claim: a..b, any_of: [a]}]\n").find("not a claim path"), std::string::npos);
  EXPECT_NE(config_error(kHead + "    authz: [{cert: issuer, any_of: [a]}]\n").find("subject"), std::string::npos);
  EXPECT_NE(config_error(kHead + "    authz: []\n"), "");
}

TEST(Origins, WildcardsAndTheMissingHeaderPolicy) {
  EXPECT_TRUE(origin_matches("https://*.example.com", "https://chat.example.com"));
  EXPECT_TRUE(origin_matches("https://*.example.com", "https://a.b.example.com"));
  EXPECT_TRUE(origin_matches("https://*.example.com", "HTTPS://Chat.Example.COM"));
  EXPECT_FALSE(origin_matches("https://*.example.com", "https://example.com"));       // no label in front
  EXPECT_FALSE(origin_matches("https://*.example.com", "http://chat.example.com"));   // scheme
  EXPECT_FALSE(origin_matches("https://*.example.com", "https://chat.example.com:8443"));  // port
  EXPECT_FALSE(origin_matches("https://*.example.com", "https://evilexample.com"));
  EXPECT_FALSE(origin_matches("https://*.example.com", "https://example.com.evil.net"));
  EXPECT_TRUE(origin_matches("https://*.example.com:8443", "https://chat.example.com:8443"));
  EXPECT_FALSE(origin_matches("https://*.example.com", ""));
  EXPECT_FALSE(valid_origin("https://*.example.com"));  // only in an allowlist
  EXPECT_TRUE(valid_origin("https://*.example.com", true));
  EXPECT_FALSE(valid_origin("https://*", true));
  EXPECT_FALSE(valid_origin("https://a.*.com", true));

  const auto deny = config::load_string(kHead + "    origins: ['https://*.example.com']\n", "t.yaml");
  const auto* d = dynamic_cast<const OriginFilter*>(deny.routes[0].filters[0].get());
  ASSERT_NE(d, nullptr);
  EXPECT_FALSE(d->allows(""));
  EXPECT_TRUE(d->allows("https://app.example.com"));
  const auto allow = config::load_string(
      kHead + "    origins: {allow: ['https://app.example.com'], missing: allow}\n", "t.yaml");
  const auto* a = dynamic_cast<const OriginFilter*>(allow.routes[0].filters[0].get());
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->allows(""));
  EXPECT_FALSE(a->allows("https://evil.example"));
  EXPECT_NE(config_error(kHead + "    origins: {allow: [x], missing: maybe}\n"), "");
  EXPECT_NE(config_error(kHead + "    origins: {missing: allow}\n").find("allow"), std::string::npos);
}

TEST(ListenerIpPolicy, ParsedWithTheRouteFilterRulesAndErrors) {
  const auto cfg = config::load_string(
      "listeners: [{address: 127.0.0.1, port: 0, ip_policy: [{deny: 10.0.0.1}, {allow: 10.0.0.0/8}]}]\n"
      "routes:\n  - upstreams: [echo]\n",
      "t.yaml");
  ASSERT_NE(cfg.listeners[0].ip_policy, nullptr);
  const auto* p = dynamic_cast<const IpPolicyFilter*>(cfg.listeners[0].ip_policy.get());
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(p->allows("10.1.2.3"));
  EXPECT_FALSE(p->allows("10.0.0.1"));
  EXPECT_FALSE(p->allows("192.0.2.1"));
  EXPECT_TRUE(cfg.routes[0].filters.empty());  // not a route filter
  const std::string err = config_error(
      "listeners: [{address: 127.0.0.1, port: 0, ip_policy: [{allow: 10.0.0.0/33}]}]\nroutes:\n  - upstreams: [echo]\n");
  EXPECT_EQ(err.rfind("t.yaml:1:", 0), 0u) << err;
}

class JwtFilterTest : public ::testing::Test {
 protected:
  void load(const std::string& extra) {
    cfg_ = config::load_string(kHead + "    jwt:\n      keys: [{secret: " + secret_ + "}]\n" + extra, "t.yaml");
    f_ = dynamic_cast<const JwtFilter*>(cfg_.routes[0].filters[0].get());
    ASSERT_NE(f_, nullptr);
  }
  std::string secret_ = std::string(32, 's');
  config::Config cfg_;
  const JwtFilter* f_ = nullptr;
};

TEST_F(JwtFilterTest, DuplicateClaimsAndRevokedTokensAreRefused) {
  load("");
  const std::int64_t now = 1'800'000'000'000;
  JwtFilter::Token t;
  EXPECT_EQ(f_->verify_token(hs256(secret_, R"({"sub":"alice","sub":"admin"})"), now, t),
            "token duplicate claim 'sub'");
  EXPECT_EQ(f_->verify_token(hs256(secret_, R"({"sub":"alice","jti":"t-9"})"), now, t), "");
  EXPECT_EQ(t.sub, "alice");
  EXPECT_EQ(t.jti, "t-9");
  EXPECT_EQ(t.deadline_ms, 0);  // no exp
  auto& store = state::Revocations::global();
  store.clear();
  ASSERT_TRUE(store.add(state::Revocations::Kind::token_id, "t-9", now + 1000, now));
  EXPECT_EQ(f_->verify_token(hs256(secret_, R"({"sub":"alice","jti":"t-9"})"), now, t), "token revoked");
  EXPECT_EQ(f_->verify_token(hs256(secret_, R"({"sub":"alice","jti":"t-10"})"), now, t), "");
  EXPECT_EQ(f_->verify_token(hs256(secret_, R"({"sub":"alice","jti":"t-9"})"), now + 1000, t), "");  // ended
  store.clear();
}

TEST_F(JwtFilterTest, RefreshMessagesAreRecognisedByTheirShapeOnly) {
  load("      refresh: {type: auth, token_field: token}\n");
  EXPECT_EQ(f_->hooks(), unsigned{kHandshake | kMessages});
  EXPECT_EQ(f_->refresh_token(R"({"type":"auth","token":"abc"})"), "abc");
  EXPECT_EQ(f_->refresh_token(R"(  {"token":"abc","type":"auth"} )"), "abc");
  EXPECT_EQ(f_->refresh_token(R"({"type":"auth"})"), std::nullopt);              // no token member named
  EXPECT_EQ(f_->refresh_token(R"({"type":"auth","token":5})"), "5");
  EXPECT_EQ(f_->refresh_token(R"({"type":"auth","token":[]})"), "");              // a refresh, and a bad one
  EXPECT_EQ(f_->refresh_token(R"({"type":"chat","token":"abc"})"), std::nullopt);  // an app message
  EXPECT_EQ(f_->refresh_token(R"(["type","auth","token"])"), std::nullopt);
  EXPECT_EQ(f_->refresh_token("hello token"), std::nullopt);
  load("");
  EXPECT_EQ(f_->hooks(), unsigned{kHandshake});  // no refresh: the fast pump stays
  EXPECT_NE(config_error(kHead + "    jwt: {keys: [{secret: " + secret_ + "}], refresh: {type_field: a, token_field: a}}\n")
                .find("two different"),
            std::string::npos);
}

}  // namespace
}  // namespace weir::filters
