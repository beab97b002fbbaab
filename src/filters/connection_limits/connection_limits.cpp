#include "filters/connection_limits/connection_limits.h"

#include <cmath>

#include "core/clock.h"
#include "observability/log.h"
#include "state/counters.h"
#include "state/shared_counters.h"

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
    if (token_) token_->self = nullptr;  // a queued answer finds nobody
    give_back();
  }

  HandshakeVerdict on_handshake(HandshakeContext& ctx) override {
    // Shared across instances when Redis is configured and up; otherwise
    // this process's counters (on_redis_down: local), or 503 (refuse).
    if (state::SharedCounters* shared = state::SharedCounters::get()) {
      if (shared->up()) return ask(*shared, ctx);
      if (shared->refuse_when_down()) return unavailable(ctx);
    }
    return check_local(ctx);
  }

 private:
  struct Alive {
    LimitsInstance* self;
  };

  HandshakeVerdict check_local(const HandshakeContext& ctx) {
    auto& store = state::Counters::local();
    const auto& rules = f_.rules();
    // Rates first: every attempt spends its token, even one refused for
    // concurrency next.
    for (std::size_t i = 0; i < rules.size(); ++i) {
      const auto& r = rules[i];
      if (r.rate <= 0) continue;
      const std::string key = key_of(r, ctx) + "|rate";
      if (const std::int64_t wait_ms = store.take(key, r.rate, r.burst, core::coarse_now_ms()); wait_ms > 0)
        return refuse(ctx, i, false, "connection rate exceeded", retry_after_s(wait_ms));
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

  // One script call for every rule; the answer resumes the handshake.
  HandshakeVerdict ask(state::SharedCounters& shared, HandshakeContext& ctx) {
    state::Admission a;
    for (std::size_t i = 0; i < f_.rules().size(); ++i) {
      const auto& r = f_.rules()[i];
      if (r.rate > 0) {
        a.rates.push_back({key_of(r, ctx) + "|rate", r.rate, r.burst});
        rate_rule_.push_back(i);
      }
      if (r.concurrent > 0) {
        a.slots.push_back({key_of(r, ctx) + "|conn", r.concurrent});
        slot_rule_.push_back(i);
      }
    }
    std::vector<std::string> slots;
    for (const auto& s : a.slots) slots.push_back(s.key);
    token_ = std::make_shared<Alive>(Alive{this});
    ctx_ = &ctx;
    resume_ = ctx.resume;
    shared.admit(std::move(a), ctx.worker,
                 [token = token_, &shared, slots = std::move(slots)](state::AdmissionResult r) mutable {
                   LimitsInstance* self = token->self;
                   if (self == nullptr || !self->resume_.alive()) {
                     // The session went while Redis answered: nobody holds these.
                     if (r.kind == state::AdmissionResult::Kind::admitted) shared.release(std::move(slots));
                     return;
                   }
                   self->answered(r, std::move(slots));
                 });
    return HandshakeVerdict::pending();
  }

  void answered(const state::AdmissionResult& r, std::vector<std::string> slots) {
    using K = state::AdmissionResult::Kind;
    HandshakeVerdict v;
    switch (r.kind) {
      case K::admitted:
        held_ = std::move(slots);
        shared_held_ = true;
        v = HandshakeVerdict::proceed();
        break;
      case K::rate_refused:
        v = refuse(*ctx_, rate_rule_[r.index], false, "connection rate exceeded", retry_after_s(r.retry_ms));
        break;
      case K::slot_refused:
        v = refuse(*ctx_, slot_rule_[r.index], true, "too many concurrent connections", 1);
        break;
      case K::unavailable:
        // Lost with the connection: as if Redis had been down when asked.
        v = state::SharedCounters::get()->refuse_when_down() ? unavailable(*ctx_) : check_local(*ctx_);
        break;
    }
    resume_(std::move(v));
  }

  static std::int64_t retry_after_s(std::int64_t wait_ms) { return std::max<std::int64_t>(1, (wait_ms + 999) / 1000); }

  HandshakeVerdict unavailable(const HandshakeContext& ctx) {
    log::Line(log::Level::info, "limit.unavailable")
        .unum("id", ctx.session_id)
        .str("trace_id", ctx.trace_id)
        .str("route", ctx.route.name)
        .str("filter", f_.name())
        .str("reason", "redis down (on_redis_down: refuse)");
    return HandshakeVerdict::refuse(503, "shared limits unavailable", {{"Retry-After", "1"}});
  }

  void give_back() {
    if (held_.empty()) return;
    if (shared_held_) {
      if (auto* shared = state::SharedCounters::get()) shared->release(std::move(held_));
    } else {
      for (const auto& k : held_) state::Counters::local().release(k);
    }
    held_.clear();
  }

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
    give_back();
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
  bool shared_held_ = false;          // held_ is in Redis, not Counters::local()
  std::shared_ptr<Alive> token_;
  Resume resume_;
  HandshakeContext* ctx_ = nullptr;   // the session's, alive while resume_ is
  std::vector<std::size_t> rate_rule_, slot_rule_;  // Admission index -> rule
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
