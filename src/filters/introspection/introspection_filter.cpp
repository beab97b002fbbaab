#include "filters/introspection/introspection_filter.h"

#include <algorithm>
#include <chrono>

#include "core/clock.h"
#include "core/worker.h"
#include "filters/claims.h"
#include "filters/wake.h"
#include "state/revocations.h"

namespace weir::filters {

namespace {

// One session's check. The waiter (run on the fetch thread) only posts to
// the session's worker, which finds this instance through a token that dies
// with it (as the jwt filter's JWKS wait does).
class IntrospectionInstance final : public Instance {
 public:
  explicit IntrospectionInstance(const IntrospectionFilter& f) : f_(f) {}
  ~IntrospectionInstance() override {
    if (wait_id_ != 0) f_.settings().endpoint->cancel(wait_id_);
  }

  HandshakeVerdict on_handshake(HandshakeContext& ctx) override {
    auto found = find_bearer_token(ctx.request, f_.settings().bearer);
    if (!found) return bearer_unauthorized("token missing");
    if (found->token.size() > f_.settings().max_token_bytes) return bearer_unauthorized("token too large");
    auto lookup = f_.settings().endpoint->lookup(
        found->token, core::wall_now_ms(), f_.counters(),
        wake_.on(ctx.worker, [](IntrospectionInstance& self, const Introspector::Outcome& o) { self.resumed(o); }));
    if (lookup.cached) {
      count(f_.cached());
      return f_.decide(ctx, Introspector::Outcome{std::move(lookup.cached), {}}, *found, core::wall_now_ms());
    }
    // Joined a request in flight for the same token: no request of its own.
    if (lookup.joined) count(f_.cached());
    wait_id_ = lookup.wait_id;
    found_ = std::move(*found);
    ctx_ = &ctx;
    resume_ = ctx.resume;
    return HandshakeVerdict::pending();
  }

 private:
  // On the worker, once the answer came (the waiter is gone).
  void resumed(const Introspector::Outcome& o) {
    wait_id_ = 0;
    if (!resume_.alive()) return;  // the session gave up (client gone, handshake timeout)
    resume_(f_.decide(*ctx_, o, found_, core::wall_now_ms()));
  }

  const IntrospectionFilter& f_;
  WakeToken<IntrospectionInstance> wake_{this};
  std::uint64_t wait_id_ = 0;
  FoundToken found_;
  HandshakeContext* ctx_ = nullptr;  // the session's, alive while resume_ is
  Resume resume_;
};

// A claim as text for a header (strings and numbers only, no control bytes).
std::string header_value(const Claims& c, const std::string& claim) {
  auto s = c.text(claim);
  if (!s) return {};
  for (unsigned char ch : *s)
    if (ch < 0x20 || ch == 0x7f) return {};
  return *s;
}

}  // namespace

HandshakeVerdict IntrospectionFilter::decide(HandshakeContext& ctx, const Introspector::Outcome& o,
                                             FoundToken& found, std::int64_t now_ms) const {
  if (!o.result) {
    return HandshakeVerdict::refuse(503, "token introspection unavailable (" + o.error + ")",
                                    {{"Retry-After", std::to_string(s_.retry_after_s)}});
  }
  const Introspected& r = *o.result;
  if (!r.active) return bearer_unauthorized("token inactive");
  if (r.exp && *r.exp <= now_ms / 1000) return bearer_unauthorized("token expired");
  if (state::Revocations::global().revoked(r.sub, r.jti, now_ms)) return bearer_unauthorized("token revoked");
  for (const auto& [claim, header] : s_.claims_to_headers) {
    // Never let the client supply it: the backend trusts this header.
    ctx.rewrite_headers.push_back({header, header_value(*r.claims, claim)});
  }
  if (s_.strip) strip_bearer_token(ctx, found);
  ctx.user = r.sub;
  ctx.token_id = r.jti;
  ctx.claims = r.claims;
  ctx.deadline_ms = 0;
  if (r.exp && s_.close_on_expiry) {
    // The session's clock is the coarse monotonic one.
    const std::int64_t left_ms = *r.exp > INT64_MAX / 1000 ? INT64_MAX / 4 : *r.exp * 1000 - now_ms;
    ctx.deadline_ms = core::coarse_now_ms() + std::max<std::int64_t>(0, left_ms);
  }
  return HandshakeVerdict::proceed();
}

std::shared_ptr<config::FilterSettings> IntrospectionFilter::parse(const config::FilterReader& v) {
  v.expect_keys({"url", "ca", "client_id", "client_secret", "token_type_hint", "timeout", "max_response_bytes",
                 "retry_after", "cache", "from", "subprotocol_prefix", "query_param", "cookie", "claims_to_headers",
                 "strip_token", "expiry", "max_token_bytes"});
  Settings s;
  Introspector::Options o;
  const auto url = v.require("url");
  o.url = url.string("an http:// or https:// URL of an RFC 7662 introspection endpoint");
  std::string error;
  const auto parsed = fetch::parse_url(o.url, /*allow_http=*/true, &error);
  if (!parsed) url.fail(url.label() + ": " + error);
  const auto ca = v.find("ca");
  if (ca) {
    if (!parsed->tls) ca->fail(ca->label() + " only goes with an https:// url");
    o.ca = ca->string("a CA bundle: a PEM file's path, or ${file:...}");
  }
  const auto id = v.find("client_id"), secret = v.find("client_secret");
  if (id) o.client_id = id->string();
  if (secret) o.client_secret = secret->string("a secret (use ${VAR} or ${file:...})");
  if (secret && !id) secret->fail(secret->label() + " needs 'client_id'");
  if (id && o.client_id.empty()) id->fail(id->label() + " must not be empty");
  if (auto h = v.find("token_type_hint")) o.token_type_hint = h->string();
  auto ms = [](const config::FilterReader& r, std::int64_t min_ms, std::int64_t max_ms, const char* range) {
    const std::int64_t d = r.duration(min_ms == 0).count();
    if (d < min_ms || d > max_ms) r.fail(r.label() + " must be " + range);
    return d;
  };
  if (auto t = v.find("timeout")) o.timeout = std::chrono::milliseconds(ms(*t, 100, 60'000, "from 100ms to 60s"));
  if (auto b = v.find("max_response_bytes")) o.max_bytes = b->size(256, 16 << 20, "from 256 bytes to 16MiB");
  if (auto r = v.find("retry_after")) s.retry_after_s = ms(*r, 1000, 3'600'000, "from 1s to 1h") / 1000;
  if (auto c = v.find("cache")) {
    c->expect_keys({"max_entries", "ttl", "inactive_ttl"});
    if (auto m = c->find("max_entries")) o.cache.max_entries = m->integer(0, 10'000'000);
    if (auto t = c->find("ttl")) o.cache.ttl_ms = ms(*t, 0, 86'400'000, "from 0 to 24h");
    if (auto t = c->find("inactive_ttl")) o.cache.inactive_ttl_ms = ms(*t, 0, 86'400'000, "from 0 to 24h");
  }
  s.bearer.parse(v);
  if (auto m = v.find("claims_to_headers")) {
    for (const auto& item : m->items(false)) {
      item.expect_keys({"claim", "header"});
      s.claims_to_headers.emplace_back(item.require("claim").string(), item.require("header").string());
    }
  }
  if (auto st = v.find("strip_token")) s.strip = st->boolean();
  if (auto e = v.find("expiry")) s.close_on_expiry = e->choice({"close", "ignore"}) == "close";
  if (auto m = v.find("max_token_bytes")) s.max_token_bytes = m->size(16, 1 << 20, "from 16 bytes to 1MiB");
  s.endpoint = Introspector::get(o, &error);
  if (!s.endpoint) (ca ? *ca : url).fail(v.label() + ": " + error);
  return std::make_shared<IntrospectionFilter>(std::move(s));
}

std::unique_ptr<Instance> IntrospectionFilter::instantiate() const {
  return std::make_unique<IntrospectionInstance>(*this);
}

// The endpoint is compared by identity: the same options share one.
bool IntrospectionFilter::same_as(const config::FilterSettings& other) const {
  const auto* o = dynamic_cast<const IntrospectionFilter*>(&other);
  return o != nullptr && o->s_.endpoint == s_.endpoint && o->s_.bearer == s_.bearer &&
         o->s_.claims_to_headers == s_.claims_to_headers && o->s_.strip == s_.strip &&
         o->s_.close_on_expiry == s_.close_on_expiry && o->s_.max_token_bytes == s_.max_token_bytes &&
         o->s_.retry_after_s == s_.retry_after_s;
}

void IntrospectionFilter::declare_metrics(obs::Registry& reg, const std::string& route) const {
  constexpr std::string_view help = "Token introspections by result (cached: answered without a request of its own)";
  auto series = [&](const char* result) {
    return reg.counter("weir_introspection_requests_total", help, {{"route", route}, {"result", result}});
  };
  counters_ = {series("active"), series("inactive"), series("error")};
  cached_ = series("cached");
}

}  // namespace weir::filters
