#include "filters/jwt/jwt_filter.h"

#include <algorithm>
#include <chrono>

#include "core/clock.h"
#include "filters/claims.h"
#include "filters/wake.h"
#include "state/revocations.h"
#include "core/worker.h"
#include "http/head.h"

namespace weir::filters {

namespace {

// A claim as text for a header (strings and numbers only, no control bytes).
std::optional<std::string> header_value(std::optional<std::string> s) {
  if (!s) return std::nullopt;
  for (unsigned char c : *s)
    if (c < 0x20 || c == 0x7f) return std::nullopt;
  return s;
}

// One session's check. With JWKS sources it may wait for a fetch: the waiter
// (run on the fetch thread) only posts to the session's worker, and the
// worker finds this instance through a token that dies with it.
class JwtInstance final : public Instance {
 public:
  explicit JwtInstance(const JwtFilter& f) : f_(f) {}
  ~JwtInstance() override {
    if (waiting_on_) waiting_on_->cancel(wait_id_);
  }

  HandshakeVerdict on_handshake(HandshakeContext& ctx) override {
    resume_ = ctx.resume;
    ctx_ = &ctx;
    return attempt();
  }

 private:
  HandshakeVerdict attempt() {
    const auto& sources = f_.settings().sources;
    std::vector<std::shared_ptr<const JwksSource::Keys>> seen;  // the key sets this check used
    seen.reserve(sources.size());
    for (const auto& src : sources) seen.push_back(src->keys());
    bool no_key = false;
    HandshakeVerdict v = f_.check(*ctx_, core::wall_now_ms(), f_.current_keys(), &no_key);
    // A fetch that ended between the snapshot above and wait_for_keys() below
    // is not waited for (the rate limit says no): check once more with its keys.
    const auto keys_changed = [&] {
      for (std::size_t i = 0; i < sources.size(); ++i)
        if (sources[i]->keys() != seen[i]) return true;
      return false;
    };
    if (v.kind != HandshakeVerdict::Kind::proceed && no_key) {
      // Each source is asked once per handshake: after its fetch, a kid it
      // still lacks is refused.
      for (std::size_t i = 0; i < sources.size() && i < 32; ++i) {
        if ((asked_ & (1u << i)) != 0) continue;
        asked_ |= 1u << i;
        if (wait(sources[i])) return HandshakeVerdict::pending();
      }
      if (keys_changed()) {
        no_key = false;
        v = f_.check(*ctx_, core::wall_now_ms(), f_.current_keys(), &no_key);
      }
      // Still no key: unless a source never had keys (the IdP has not
      // answered), the token is at fault.
      for (const auto& src : sources) {
        if (v.kind == HandshakeVerdict::Kind::proceed || !no_key) break;
        if (src->keys() == nullptr) {
          v = HandshakeVerdict::refuse(503, "signing keys unavailable (JWKS not fetched)",
                                       {{"Retry-After", std::to_string(std::max<std::int64_t>(
                                                            1, src->options().min_refetch.count() / 1000))}});
          break;
        }
      }
    }
    count(v.kind == HandshakeVerdict::Kind::proceed ? f_.accepted() : f_.rejected());
    if (v.kind == HandshakeVerdict::Kind::proceed) sub_ = ctx_->user;
    return v;
  }

 public:
  // In-band refresh (settings().refresh): only client text messages of the
  // configured shape are Weir's; everything else is forwarded untouched.
  MessageVerdict on_message(Direction d, Message& m) override {
    if (d != Direction::to_upstream || m.opcode != ws::Opcode::text) return MessageVerdict::forward();
    const auto token = f_.refresh_token(m.payload);
    if (!token) return MessageVerdict::forward();
    const auto now_ms = core::wall_now_ms();
    JwtFilter::Token t;
    std::string why = f_.verify_token(*token, now_ms, t);
    if (why.empty() && t.sub != sub_) why = "another subject";
    if (!why.empty()) {
      count(f_.rejected());
      return MessageVerdict::close(ws::close_code::policy_violation, "token refresh refused: " + why);
    }
    count(f_.refreshed());
    // No exp on the new token: no deadline any more.
    return MessageVerdict::consume(t.deadline_ms > 0 ? t.deadline_ms : INT64_MAX / 4);
  }


 private:
  bool wait(const std::shared_ptr<JwksSource>& src) {
    const std::uint64_t id = src->wait_for_keys(wake_.on(ctx_->worker, [](JwtInstance& self) { self.resumed(); }));
    if (id == 0) return false;
    waiting_on_ = src;
    wait_id_ = id;
    return true;
  }

  // On the worker, after the fetch ended (its waiter is gone).
  void resumed() {
    waiting_on_.reset();
    wait_id_ = 0;
    if (!resume_.alive()) return;  // the session gave up (client gone, handshake timeout)
    HandshakeVerdict v = attempt();
    if (v.kind != HandshakeVerdict::Kind::pending) resume_(std::move(v));
  }

  const JwtFilter& f_;
  Resume resume_;
  HandshakeContext* ctx_ = nullptr;  // the session's, alive while resume_ is
  WakeToken<JwtInstance> wake_{this};
  std::shared_ptr<JwksSource> waiting_on_;
  std::uint64_t wait_id_ = 0;
  std::uint32_t asked_ = 0;  // sources already waited for, by index
  std::string sub_;          // the handshake's subject (a refresh must keep it)
};

}  // namespace

JwtFilter::Keys JwtFilter::current_keys() const {
  if (s_.sources.empty()) return s_.keys;
  Keys all = s_.keys;
  for (const auto& src : s_.sources)
    if (auto k = src->keys()) all.insert(all.end(), k->begin(), k->end());
  return all;
}

HandshakeVerdict JwtFilter::check(HandshakeContext& ctx, std::int64_t now_ms, const Keys& keys, bool* no_key) const {
  std::optional<FoundToken> found = find_bearer_token(ctx.request, s_.bearer);
  if (!found) return bearer_unauthorized("token missing");
  Token t;
  if (std::string why = verify_token(found->token, now_ms, keys, t, no_key); !why.empty()) return bearer_unauthorized(std::move(why));
  const Claims* claims = t.claims.get();
  for (const auto& [claim, header] : s_.claims_to_headers) {
    // Never let the client supply it: the backend trusts this header.
    ctx.rewrite_headers.push_back({header, header_value(claims->text(claim)).value_or("")});
  }
  if (s_.strip) strip_bearer_token(ctx, *found);
  ctx.user = std::move(t.sub);
  ctx.token_id = std::move(t.jti);
  ctx.deadline_ms = t.deadline_ms;
  ctx.claims = std::move(t.claims);
  return HandshakeVerdict::proceed();
}

std::string JwtFilter::verify_token(std::string_view token, std::int64_t now_ms, const Keys& keys, Token& out,
                                    bool* no_key) const {
  const std::int64_t now_s = now_ms / 1000;
  jose::Failure why;
  const auto verified = jose::verify(token, keys, s_.algorithms, s_.max_bytes, why);
  if (!verified) {
    if (no_key) *no_key = why.no_key;
    return why.reason;
  }
  std::string bad_claims;
  auto claims = Claims::parse(verified->payload_json, &bad_claims);
  if (!claims) return "token " + bad_claims;
  bool bad = false;
  const auto exp = claims->number("exp", &bad);
  const auto nbf = claims->number("nbf", &bad);
  const auto iat = claims->number("iat", &bad);
  if (bad) return "exp, nbf and iat must be numbers";
  // now_s +- skew cannot overflow; a claim near INT64_MAX must not either.
  if (exp && *exp <= now_s - s_.skew_s) return "token expired";
  if (nbf && *nbf > now_s + s_.skew_s) return "token not valid yet";
  if (iat && *iat > now_s + s_.skew_s) return "token issued in the future";
  if (!s_.issuer.empty() && claims->text("iss") != s_.issuer) return "wrong issuer";
  if (!s_.audience.empty()) {
    // aud is one string or an array of them (RFC 7519 4.1.3).
    const auto one = claims->text("aud");
    const auto all = one ? std::vector<std::string>{*one} : claims->strings("aud");
    if (std::find(all.begin(), all.end(), s_.audience) == all.end()) return "wrong audience";
  }
  out.sub = header_value(claims->text("sub")).value_or("");
  out.jti = header_value(claims->text("jti")).value_or("");
  if (state::Revocations::global().revoked(out.sub, out.jti, now_ms)) return "token revoked";
  out.deadline_ms = 0;
  if (exp && s_.close_on_expiry) {
    // The session's clock is the coarse monotonic one.
    const std::int64_t left_ms = *exp > INT64_MAX / 1000 ? INT64_MAX / 4 : *exp * 1000 - now_ms;
    out.deadline_ms = core::coarse_now_ms() + std::max<std::int64_t>(0, left_ms);
  }
  out.claims = std::move(claims);
  return {};
}

std::optional<std::string> JwtFilter::refresh_token(std::string_view text) const {
  // Cheap tests first: most messages are not refreshes.
  const auto& r = *s_.refresh;
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos || text[first] != '{' || text.size() > s_.max_bytes + 1024 ||
      text.find(r.token_field) == std::string_view::npos)
    return std::nullopt;
  std::string error;
  const auto msg = Claims::parse(text, &error);
  if (!msg || msg->text(r.type_field) != r.type) return std::nullopt;
  // The right type with no token string is still a (failed) refresh.
  return msg->text(r.token_field).value_or("");
}

std::shared_ptr<config::FilterSettings> JwtFilter::parse(const config::FilterReader& v) {
  v.expect_keys({"keys", "algorithms", "issuer", "audience", "clock_skew", "from", "subprotocol_prefix",
                 "query_param", "cookie", "claims_to_headers", "strip_token", "expiry", "max_token_bytes",
                 "refresh"});
  Settings s;
  for (const auto& k : v.require("keys").items(false)) {
    k.expect_keys({"secret", "pem", "kid", "jwks", "ca", "refresh", "timeout", "min_refetch", "max_bytes"});
    std::string kid;
    if (auto id = k.find("kid")) kid = id->string();
    const auto secret = k.find("secret"), pem = k.find("pem"), jwks = k.find("jwks");
    if (secret.has_value() + pem.has_value() + jwks.has_value() != 1)
      k.fail(k.label() + " needs exactly one of 'secret', 'pem' and 'jwks'");
    if (!jwks) {
      for (const char* only : {"ca", "refresh", "timeout", "min_refetch", "max_bytes"})
        if (auto o = k.find(only)) o->fail(o->label() + " only goes with 'jwks'");
    }
    if (jwks) {
      if (auto id = k.find("kid")) id->fail(id->label() + ": a JWKS names its own keys' kids");
      JwksSource::Options o;
      o.url = jwks->string("an https:// URL of a JWK Set");
      std::string error;
      if (!fetch::parse_https_url(o.url, &error)) jwks->fail(jwks->label() + ": " + error);
      if (auto ca = k.find("ca")) o.ca = ca->string("a CA bundle: a PEM file's path, or ${file:...}");
      auto ms = [](const config::FilterReader& r, std::int64_t min_ms, std::int64_t max_ms, const char* range) {
        const auto d = std::chrono::milliseconds(r.duration(false).count());
        if (d.count() < min_ms || d.count() > max_ms) r.fail(r.label() + " must be " + range);
        return d;
      };
      if (auto r = k.find("refresh")) o.refresh = ms(*r, 1000, 7 * 86'400'000LL, "from 1s to 7d");
      if (auto t = k.find("timeout")) o.timeout = ms(*t, 100, 60'000, "from 100ms to 60s");
      if (auto m = k.find("min_refetch")) o.min_refetch = ms(*m, 1000, 86'400'000LL, "from 1s to 24h");
      if (auto b = k.find("max_bytes")) o.max_bytes = b->size(1024, 16 << 20, "from 1KiB to 16MiB");
      auto src = JwksSource::get(o, &error);
      if (!src) (k.find("ca") ? *k.find("ca") : *jwks).fail(k.label() + ": " + error);
      s.sources.push_back(std::move(src));
    } else if (secret) {
      std::string bytes = secret->string("a shared secret (at least 32 bytes; use ${VAR} or ${file:...})");
      if (bytes.size() < 32) secret->fail(secret->label() + " must be at least 32 bytes (RFC 7518 3.2)");
      s.keys.push_back(jose::Key::secret(std::move(bytes), std::move(kid)));
    } else {
      std::string error;
      auto key = jose::Key::pem(pem->string("a PEM public key or certificate (e.g. ${file:keys/idp.pem})"), kid, &error);
      if (!key) pem->fail(pem->label() + ": " + error);
      s.keys.push_back(std::move(key));
    }
  }
  if (s.keys.empty() && s.sources.empty()) v.fail(v.label() + ".keys needs at least one key");
  if (auto a = v.find("algorithms")) {
    for (const auto& item : a->items(true)) {
      const std::string name = item.string();
      const auto alg = jose::alg_from_name(name);
      if (!alg) item.fail(item.label() + ": unknown or refused algorithm '" + name + "' (none is never allowed)");
      s.algorithms.push_back(*alg);
    }
  }
  if (auto i = v.find("issuer")) s.issuer = i->string();
  if (auto a = v.find("audience")) s.audience = a->string();
  if (auto c = v.find("clock_skew")) s.skew_s = c->duration(true).count() / 1000;
  s.bearer.parse(v);
  if (auto m = v.find("claims_to_headers")) {
    for (const auto& item : m->items(false)) {
      item.expect_keys({"claim", "header"});
      s.claims_to_headers.emplace_back(item.require("claim").string(), item.require("header").string());
    }
  }
  if (auto st = v.find("strip_token")) s.strip = st->boolean();
  if (auto e = v.find("expiry")) s.close_on_expiry = e->choice({"close", "ignore"}) == "close";
  if (auto m = v.find("max_token_bytes")) s.max_bytes = m->size(256, 1 << 20, "from 256 bytes to 1MiB");
  if (auto r = v.find("refresh")) {
    r->expect_keys({"type_field", "type", "token_field"});
    Settings::Refresh rs;
    if (auto f = r->find("type_field")) rs.type_field = f->string();
    if (auto f = r->find("type")) rs.type = f->string();
    if (auto f = r->find("token_field")) rs.token_field = f->string();
    if (rs.type_field.empty() || rs.token_field.empty() || rs.type_field == rs.token_field)
      r->fail(r->label() + ": type_field and token_field must be two different, non-empty names");
    s.refresh = std::move(rs);
  }
  return std::make_shared<JwtFilter>(std::move(s));
}

std::unique_ptr<Instance> JwtFilter::instantiate() const { return std::make_unique<JwtInstance>(*this); }

// Keys cannot be compared by value cheaply: any jwt block counts as changed.
bool JwtFilter::same_as(const config::FilterSettings&) const { return false; }

void JwtFilter::declare_metrics(obs::Registry& reg, const std::string& route) const {
  accepted_ = reg.counter("weir_jwt_tokens_total", "Tokens the jwt filter checked, by result",
                          {{"route", route}, {"result", "accepted"}});
  rejected_ = reg.counter("weir_jwt_tokens_total", "Tokens the jwt filter checked, by result",
                          {{"route", route}, {"result", "rejected"}});
  refreshed_ = reg.counter("weir_jwt_tokens_total", "Tokens the jwt filter checked, by result",
                           {{"route", route}, {"result", "refreshed"}});
  if (s_.sources.empty()) return;
  constexpr std::string_view help = "JWKS fetches the jwt filter made, by result";
  const JwksSource::Counters c{reg.counter("weir_jwks_fetches_total", help, {{"route", route}, {"result", "ok"}}),
                               reg.counter("weir_jwks_fetches_total", help, {{"route", route}, {"result", "failed"}}),
                               reg.counter("weir_jwks_fetches_total", help, {{"route", route}, {"result", "invalid"}})};
  // The generation is about to serve: its sources fetch now (a source
  // shared with the previous generation keeps its keys and schedule).
  for (const auto& src : s_.sources) {
    src->add_counters(c);
    src->start();
  }
}

}  // namespace weir::filters
