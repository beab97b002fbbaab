// The introspection filter's parts without a network: the response parser
// (RFC 7662 2.2), the result cache (size, TTL, exp), the request it sends,
// the verdicts it gives, and its config errors.

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "core/worker.h"
#include "filters/introspection/introspection_cache.h"
#include "filters/introspection/introspection_filter.h"
#include "filters/introspection/introspection_response.h"
#include "http/head.h"
#include "support/test_support.h"

namespace weir::filters {
namespace {

using test::config_error;

const std::string kHead = "listeners: [{address: 127.0.0.1, port: 0}]\nroutes:\n  - upstreams: [echo]\n";

std::optional<Introspected> parse(const std::string& body, std::string* why = nullptr) {
  std::string error;
  auto r = parse_introspection_response(body, &error);
  if (why) *why = error;
  return r;
}

TEST(IntrospectionResponse, ActiveWithIdentityScopeAndExp) {
  const auto r = parse(R"({"active":true,"sub":"alice","jti":"t-1","scope":"chat:read chat:write",
                          "exp":1900000000,"client_id":"app","realm_access":{"roles":["admin"]}})");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->active);
  EXPECT_EQ(r->sub, "alice");
  EXPECT_EQ(r->jti, "t-1");
  EXPECT_EQ(r->exp, 1900000000);
  ASSERT_NE(r->claims, nullptr);
  EXPECT_EQ(r->claims->strings("scope"), (std::vector<std::string>{"chat:read", "chat:write"}));
  EXPECT_EQ(r->claims->strings("realm_access.roles"), std::vector<std::string>{"admin"});
}

TEST(IntrospectionResponse, InactiveNeedsNothingElse) {
  const auto r = parse(R"({"active":false})");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->active);
  // Whatever else an inactive answer says is not looked at.
  const auto r2 = parse(R"({"active":false,"exp":"soon","sub":{"x":1}})");
  ASSERT_TRUE(r2);
  EXPECT_FALSE(r2->active);
}

TEST(IntrospectionResponse, MalformedAnswersAreErrorsNotInactive) {
  std::string why;
  for (const char* body : {"", "not json", "[]", "null", R"("active")", "{}", R"({"active":"true"})",
                           R"({"active":1})", R"({"active":null})", R"({"active":true)"}) {
    EXPECT_FALSE(parse(body, &why)) << body;
    EXPECT_NE(why, "") << body;
  }
  EXPECT_FALSE(parse(R"({"active":true,"active":false})", &why));
  EXPECT_NE(why.find("duplicate member 'active'"), std::string::npos) << why;
  EXPECT_FALSE(parse(R"({"active":true,"exp":"tomorrow"})", &why));
  EXPECT_EQ(why, "exp, nbf and iat must be numbers");
  EXPECT_FALSE(parse(R"({"active":true,"nbf":[]})", &why));
  EXPECT_FALSE(parse(R"({"active":true,"sub":["a"]})", &why));
  EXPECT_EQ(why, "'sub' is not a printable string of at most 1 KiB");
  EXPECT_FALSE(parse("{\"active\":true,\"sub\":\"a\\nX-Admin: 1\"}", &why));
  EXPECT_FALSE(parse(R"({"active":true,"jti":{}})", &why));
  // Deeper than 32 levels.
  EXPECT_FALSE(parse(R"({"active":true,"x":)" + std::string(40, '[') + std::string(40, ']') + "}", &why));
}

std::shared_ptr<const Introspected> answer(bool active, std::optional<std::int64_t> exp = std::nullopt) {
  auto r = std::make_shared<Introspected>();
  r->active = active;
  r->exp = exp;
  return r;
}

TEST(IntrospectionCache, ActiveAnswersLiveTheirTtlButNeverPastExp) {
  IntrospectionCache c({.max_entries = 10, .ttl_ms = 60'000, .inactive_ttl_ms = 5'000});
  const std::int64_t now = 1'700'000'000'000;
  c.put("a", answer(true), now);
  c.put("b", answer(true, now / 1000 + 10), now);  // exp in 10 s, before the TTL
  c.put("i", answer(false), now);
  EXPECT_NE(c.find("a", now + 59'999), nullptr);
  EXPECT_EQ(c.find("a", now + 60'000), nullptr);
  EXPECT_NE(c.find("b", now + 9'999), nullptr);
  EXPECT_EQ(c.find("b", now + 10'000), nullptr);
  EXPECT_NE(c.find("i", now + 4'999), nullptr);
  EXPECT_EQ(c.find("i", now + 5'000), nullptr);
  EXPECT_EQ(c.size(), 0u);  // expired entries are dropped when found
  // An active answer whose exp already passed is not kept at all.
  c.put("late", answer(true, now / 1000 - 1), now);
  EXPECT_EQ(c.find("late", now), nullptr);
  // Nor is anything with a TTL of 0.
  IntrospectionCache none({.max_entries = 10, .ttl_ms = 60'000, .inactive_ttl_ms = 0});
  none.put("i", answer(false), now);
  EXPECT_EQ(none.size(), 0u);
  IntrospectionCache off({.max_entries = 0, .ttl_ms = 60'000, .inactive_ttl_ms = 60'000});
  off.put("a", answer(true), now);
  EXPECT_EQ(off.find("a", now), nullptr);
}

TEST(IntrospectionCache, BoundedInEntriesLeastRecentlyUsedGoesFirst) {
  IntrospectionCache c({.max_entries = 3, .ttl_ms = 60'000, .inactive_ttl_ms = 60'000});
  const std::int64_t now = 1'700'000'000'000;
  c.put("a", answer(true), now);
  c.put("b", answer(true), now);
  c.put("c", answer(false), now);
  EXPECT_NE(c.find("a", now), nullptr);  // a is now the most recent; b the least
  c.put("d", answer(true), now);
  EXPECT_EQ(c.size(), 3u);
  EXPECT_EQ(c.find("b", now), nullptr);
  EXPECT_NE(c.find("a", now), nullptr);
  EXPECT_NE(c.find("c", now), nullptr);
  EXPECT_NE(c.find("d", now), nullptr);
  // Replacing a key does not grow the cache.
  c.put("d", answer(false), now);
  EXPECT_EQ(c.size(), 3u);
  EXPECT_FALSE(c.find("d", now)->active);
  for (int i = 0; i < 1000; ++i) c.put("k" + std::to_string(i), answer(true), now);
  EXPECT_EQ(c.size(), 3u);
}

TEST(Introspection, FormEncodingAndTheRequest) {
  EXPECT_EQ(form_urlencode("a b+c/d=e&f~é"), "a+b%2Bc%2Fd%3De%26f%7E%C3%A9");
  EXPECT_EQ(form_urlencode("Az09-._*"), "Az09-._*");
  const auto cfg = config::load_string(kHead +
                                           "    introspection:\n"
                                           "      url: http://127.0.0.1:9/introspect\n"
                                           "      client_id: 'weir app'\n"
                                           "      client_secret: 's3:cr%t'\n"
                                           "      token_type_hint: access_token\n",
                                       "t.yaml");
  const auto* f = dynamic_cast<const IntrospectionFilter*>(cfg.routes[0].filters[0].get());
  ASSERT_NE(f, nullptr);
  const auto req = f->settings().endpoint->request_for("tok en+/=");
  EXPECT_EQ(req.method, "POST");
  EXPECT_FALSE(req.url.tls);
  EXPECT_EQ(req.url.port, "9");
  EXPECT_EQ(req.url.target, "/introspect");
  EXPECT_EQ(req.body, "token=tok+en%2B%2F%3D&token_type_hint=access_token");
  std::map<std::string, std::string> h(req.headers.begin(), req.headers.end());
  EXPECT_EQ(h["Content-Type"], "application/x-www-form-urlencoded");
  // base64("weir+app:s3%3Acr%25t"): RFC 6749 2.3.1 encodes both before joining.
  EXPECT_EQ(h["Authorization"], "Basic d2VpcithcHA6czMlM0FjciUyNXQ=");
}

TEST(Introspection, Verdicts) {
  const auto cfg = config::load_string(kHead +
                                           "    introspection:\n"
                                           "      url: https://idp.example/introspect\n"
                                           "      retry_after: 7s\n"
                                           "      from: [query, header]\n"
                                           "      claims_to_headers: [{claim: sub, header: X-User-Id}]\n",
                                       "t.yaml");
  const auto* f = dynamic_cast<const IntrospectionFilter*>(cfg.routes[0].filters[0].get());
  ASSERT_NE(f, nullptr);
  http::Head req;
  req.target = "/chat?room=1&access_token=opaque";
  core::Worker worker(0, 4096);
  auto make_ctx = [&] { return HandshakeContext{req, "127.0.0.1", "", cfg.routes[0], worker}; };
  const std::int64_t now = 1'700'000'000'000;
  FoundToken found{"opaque", {}, "/chat?room=1"};

  auto ctx = make_ctx();
  auto v = f->decide(ctx, {nullptr, "introspection endpoint: timed out after 3000 ms"}, found, now);
  EXPECT_EQ(v.status, 503u);
  ASSERT_EQ(v.headers.size(), 1u);
  EXPECT_EQ(v.headers[0].name, "Retry-After");
  EXPECT_EQ(v.headers[0].value, "7");

  v = f->decide(ctx, {answer(false), {}}, found, now);
  EXPECT_EQ(v.status, 401u);
  EXPECT_EQ(v.reason, "token inactive");
  EXPECT_NE(v.headers.at(0).value.find("invalid_token"), std::string::npos);

  v = f->decide(ctx, {answer(true, now / 1000), {}}, found, now);
  EXPECT_EQ(v.status, 401u);
  EXPECT_EQ(v.reason, "token expired");

  auto good = parse(R"({"active":true,"sub":"alice","jti":"j1","exp":1700000030,"scope":"a b"})");
  ASSERT_TRUE(good);
  v = f->decide(ctx, {std::make_shared<const Introspected>(*good), {}}, found, now);
  EXPECT_EQ(v.kind, HandshakeVerdict::Kind::proceed);
  EXPECT_EQ(ctx.user, "alice");
  EXPECT_EQ(ctx.token_id, "j1");
  ASSERT_NE(ctx.claims, nullptr);
  EXPECT_EQ(ctx.claims->strings("scope").size(), 2u);
  // The deadline is on the coarse monotonic clock, 30 s ahead.
  EXPECT_NEAR(static_cast<double>(ctx.deadline_ms - core::coarse_now_ms()), 30'000.0, 100.0);
  EXPECT_EQ(ctx.rewrite_target, "/chat?room=1");
  ASSERT_EQ(ctx.rewrite_headers.size(), 1u);
  EXPECT_EQ(ctx.rewrite_headers[0].name, "X-User-Id");
  EXPECT_EQ(ctx.rewrite_headers[0].value, "alice");

  // The token is looked for where configured, in order.
  auto t = find_bearer_token(req, f->settings().bearer);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->token, "opaque");
}

TEST(Introspection, ConfigErrors) {
  auto err = [](const std::string& body) { return config_error(kHead + "    introspection:\n" + body); };
  EXPECT_NE(err("      client_id: x\n").find("t.yaml:5:7: missing required key 'url'"), std::string::npos)
      << err("      client_id: x\n");
  EXPECT_NE(err("      client_id: x\n").find("url"), std::string::npos);
  EXPECT_NE(err("      url: ftp://idp/x\n").find("t.yaml:5:12: 'introspection.url': must be an http:// or https:// URL"),
            std::string::npos)
      << err("      url: ftp://idp/x\n");
  EXPECT_NE(err("      url: http://idp/x\n      ca: /tmp/ca.pem\n").find("t.yaml:6:11:"), std::string::npos)
      << err("      url: http://idp/x\n      ca: /tmp/ca.pem\n");
  EXPECT_NE(err("      url: https://idp/x\n      client_secret: s\n").find("needs 'client_id'"), std::string::npos);
  EXPECT_NE(err("      url: https://idp/x\n      timeout: 10ms\n").find("from 100ms to 60s"), std::string::npos);
  EXPECT_NE(err("      url: https://idp/x\n      cache: {size: 3}\n").find("size"), std::string::npos);
  EXPECT_NE(err("      url: https://idp/x\n      from: [body]\n"), "");
  EXPECT_NE(err("      url: https://idp/x\n      secret: s\n").find("secret"), std::string::npos);
  // authz on claims is satisfied by introspection.
  EXPECT_EQ(config_error(kHead + "    introspection: {url: 'https://idp/x'}\n    authz: [{claim: scope, any_of: [a]}]\n"),
            "");
}

}  // namespace
}  // namespace weir::filters
