#include "filters/connection_limits/connection_limits.h"

#include <cmath>

#include "core/clock.h"
#include "observability/log.h"
#include "state/counters.h"

namespace weir::filters {

std::string_view per_name(ConnectionLimitsFilter::Per p) {
  switch (p) {
    case ConnectionLimitsFilter::Per::ip: return "ip";
    case ConnectionLimitsFilter::Per::user: return "user";
    case ConnectionLimitsFilter::Per::route: return "route";
    case ConnectionLimitsFilter::Per::global: return "global";
  }
  return "";
}

namespace {

using Per = ConnectionLimitsFilter::Per;

class LimitsInstance final : public Instance {
 public:
  explicit LimitsInstance(const ConnectionLimitsFilter& f) : f_(f) {}
  ~LimitsInstance() override {
    for (const auto& k : held_) state::Counters::local().release(k);
  }

  HandshakeVerdict on_handshake(HandshakeContext& ctx) override {
    auto& store = state::Counters::local();
    const auto& rules = f_.rules();
    // Rates first: every attempt spends its token, even one refused for
    // concurrency next.
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const auto& r = rules[i];
      if (r.rate <= 0) continue;
      const std::string key = key_of(r, ctx) + "|rate";
      if (const std::int64_t wait_ms = store.take(key, r.rate, r.burst, core::coarse_now_ms()); wait_ms > 0) {
        const std::int64_t after_s = std::max<std::int64_t>(1, (wait_ms + 999) / 1000);
        return refuse(ctx, i, false, "connection rate exceeded", after_s);
      }
    }
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const auto& r = rules[i];
      if (r.concurrent == 0) continue;
      std::string key = key_of(r, ctx) + "|conn";
      if (!store.acquire(key, r.concurrent)) return refuse(ctx, i, true, "too many concurrent connections", 1);
      held_.push_back(std::move(key));
    }
    return HandshakeVerdict::proceed();
  }

 private:
  std::string key_of(const ConnectionLimitsFilter::Rule& r, const HandshakeContext& ctx) const {
    switch (r.per) {
      case Per::ip: return "r|" + ctx.route.name + "|ip|" + std::string(ctx.client_ip);
      case Per::user:
        return ctx.user.empty() ? "r|" + ctx.route.name + "|ip|" + std::string(ctx.client_ip)
                                : "r|" + ctx.route.name + "|user|" + ctx.user;
      case Per::route: return "r|" + ctx.route.name;
      case Per::global: return "global";
    }
    return {};
  }

  HandshakeVerdict refuse(const HandshakeContext& ctx, std::size_t rule, bool concurrent, std::string what,
                          std::int64_t retry_after_s) {
    // Slots taken by earlier rules go back now, not when the session ends.
    for (const auto& k : held_) state::Counters::local().release(k);
    held_.clear();
    const auto& r = f_.rules()[rule];
    count(f_.hits(rule, concurrent));
    const std::string_view per = per_name(r.per);
    log::Line(log::Level::info, "limit.hit")
        .unum("id", ctx.session_id)
        .str("trace_id", ctx.trace_id)
        .str("route", ctx.route.name)
        .str("filter", f_.name())
        .str("limit", concurrent ? "concurrent" : "connection_rate")
        .str("per", per)
        .str("key", r.per == Per::user && !ctx.user.empty() ? std::string_view(ctx.user)
                    : r.per == Per::route || r.per == Per::global ? std::string_view(ctx.route.name)
                                                                  : ctx.client_ip)
        .str("action", "refuse")
        .num("retry_after_s", retry_after_s);
    return HandshakeVerdict::refuse(429, what + " (per " + std::string(per) + ")",
                                    {{"Retry-After", std::to_string(retry_after_s)}});
  }

  const ConnectionLimitsFilter& f_;
  std::vector<std::string> held_;
};

std::vector<ConnectionLimitsFilter::Rule> parse_rules(const config::FilterReader& v, bool user) {
  std::vector<ConnectionLimitsFilter::Rule> rules;
  for (const auto& item : v.items(false)) {
    if (user) item.expect_keys({"connections_per_second", "burst", "concurrent"});
    else item.expect_keys({"per", "connections_per_second", "burst", "concurrent"});
    ConnectionLimitsFilter::Rule r;
    if (user) {
      r.per = Per::user;
    } else {
      const std::string per = item.require("per").choice({"ip", "route", "global"});
      r.per = per == "ip" ? Per::ip : per == "route" ? Per::route : Per::global;
    }
    if (auto c = item.find("connections_per_second")) r.rate = c->number(0.001, 1e6);
    if (auto b = item.find("burst")) {
      if (r.rate == 0) b->fail(b->label() + " needs connections_per_second");
      r.burst = b->number(1, 1e6);
    } else {
      r.burst = std::max(1.0, r.rate);  // one second's worth
    }
    if (auto c = item.find("concurrent")) r.concurrent = static_cast<std::uint32_t>(c->integer(1, 10'000'000));
    if (r.rate == 0 && r.concurrent == 0) item.fail(item.label() + " needs connections_per_second or concurrent");
    rules.push_back(r);
  }
  if (rules.empty()) v.fail(v.label() + " needs at least one rule");
  return rules;
}

}  // namespace

std::shared_ptr<config::FilterSettings> ConnectionLimitsFilter::parse_connection(const config::FilterReader& v) {
  return std::make_shared<ConnectionLimitsFilter>(parse_rules(v, false));
}

std::shared_ptr<config::FilterSettings> ConnectionLimitsFilter::parse_user(const config::FilterReader& v) {
  return std::make_shared<ConnectionLimitsFilter>(parse_rules(v, true));
}

std::unique_ptr<Instance> ConnectionLimitsFilter::instantiate() const { return std::make_unique<LimitsInstance>(*this); }

bool ConnectionLimitsFilter::same_as(const config::FilterSettings& other) const {
  const auto* o = dynamic_cast<const ConnectionLimitsFilter*>(&other);
  return o != nullptr && o->key == key && o->rules_ == rules_;
}

void ConnectionLimitsFilter::declare_metrics(obs::Registry& reg, const std::string& route) const {
  hits_.assign(rules_.size() * 2, obs::CounterId{});
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    for (bool concurrent : {false, true}) {
      if (concurrent ? rules_[i].concurrent == 0 : rules_[i].rate <= 0) continue;
      hits_[i * 2 + (concurrent ? 1 : 0)] =
          reg.counter("weir_limit_hits_total", "Handshakes refused by a connection limit (429)",
                      {{"route", route},
                       {"limit", concurrent ? "concurrent" : "connection_rate"},
                       {"per", std::string(per_name(rules_[i].per))}});
    }
  }
}

}  // namespace weir::filters
