#include "upstream/supervisor.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/clock.h"
#include "observability/log.h"
#include "observability/metrics.h"
#include "upstream/prewarm.h"
#include "upstream/group_metrics.h"
#include "upstream/health_check.h"

namespace weir::upstream {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

const char* policy_name(config::UpstreamGroup::Policy p) {
  switch (p) {
    case config::UpstreamGroup::Policy::round_robin: return "round_robin";
    case config::UpstreamGroup::Policy::least_conn: return "least_conn";
    case config::UpstreamGroup::Policy::random_two: return "random_two";
    case config::UpstreamGroup::Policy::hash: return "hash";
  }
  return "?";
}


}  // namespace

struct Supervisor::Impl : std::enable_shared_from_this<Supervisor::Impl> {
  struct Checker {
    std::shared_ptr<MemberState> state;
    config::HealthCheck conf;
    config::Upstream up;
    std::shared_ptr<const net::TlsClient> tls;  // wss:// members
    unsigned passes = 0, fails = 0;
    std::string last_error;
    std::unique_ptr<asio::steady_timer> timer;
    std::uint64_t epoch = 0;
  };
  struct Balance {
    std::int64_t next_ms = 0;
    double tokens = 0;
    std::int64_t last_ms = 0;
  };

  Impl(asio::io_context& i, CloseFn c) : io(i), close(std::move(c)), tick_timer(i) {}

  asio::io_context& io;
  CloseFn close;
  asio::steady_timer tick_timer;
  std::vector<std::shared_ptr<const Group>> groups;
  std::map<const MemberState*, Checker> checkers;
  std::map<std::uint64_t, Balance> balance;  // by Group::serial
  std::uint64_t epoch = 0;  // a set_groups call: checks of older ones stop
  bool stopped = false;
  std::size_t collector = 0;

  void set(std::vector<std::shared_ptr<const Group>> gs, std::vector<std::shared_ptr<const net::TlsClient>> tls) {
    groups = std::move(gs);
    ++epoch;
    for (auto& [_, c] : checkers)
      if (c.timer) c.timer->cancel();
    std::map<const MemberState*, Checker> next;
    for (std::size_t gi = 0; gi < groups.size(); ++gi) {
      const auto& g = groups[gi];
      const auto& hc = g->conf().health;
      for (std::size_t i = 0; i < g->size(); ++i) {
        MemberState& s = g->state(i);
        const auto& up = g->member(i).up;
        if (hc.type == config::HealthCheck::Type::none || up.kind == config::Upstream::Kind::echo) {
          // No checks (any more): up, as far as active health goes.
          if (!s.healthy.exchange(true)) s.up_since_ms = core::coarse_now_ms();
          continue;
        }
        Checker c;
        if (auto it = checkers.find(&s); it != checkers.end()) {
          c.passes = it->second.passes;
          c.fails = it->second.fails;
          c.last_error = it->second.last_error;
        }
        c.state = g->state_ptr(i);
        c.conf = hc;
        c.up = up;
        if (up.tls && gi < tls.size()) c.tls = tls[gi];
        c.timer = std::make_unique<asio::steady_timer>(io);
        c.epoch = epoch;
        next.emplace(&s, std::move(c));
      }
    }
    checkers = std::move(next);
    for (auto& [s, c] : checkers) check(s, epoch);
  }

  void check(const MemberState* key, std::uint64_t ep) {
    if (stopped || ep != epoch) return;
    auto it = checkers.find(key);
    if (it == checkers.end()) return;
    Checker& c = it->second;
    run_health_check(io, c.conf, c.up, c.tls, [self = shared_from_this(), key, ep](bool ok, std::string why) {
      if (self->stopped || ep != self->epoch) return;
      auto it2 = self->checkers.find(key);
      if (it2 == self->checkers.end()) return;
      self->result(it2->second, ok, std::move(why));
      it2->second.timer->expires_after(it2->second.conf.interval);
      it2->second.timer->async_wait([self, key, ep](error_code ec) {
        if (!ec) self->check(key, ep);
      });
    });
  }

  void result(Checker& c, bool ok, std::string why) {
    MemberState& s = *c.state;
    const bool was = s.healthy.load();
    if (ok) {
      c.fails = 0;
      ++c.passes;
      c.last_error.clear();
      if (!was && c.passes >= c.conf.rise) {
        s.up_since_ms = core::coarse_now_ms();  // slow start from here
        s.healthy = true;
        log::Line(log::Level::info, "upstream.health").str("group", s.group).str("upstream", s.text).boolean("healthy", true);
      }
    } else {
      c.passes = 0;
      ++c.fails;
      c.last_error = why;
      if (was && c.fails >= c.conf.fall) {
        s.healthy = false;
        log::Line(log::Level::warn, "upstream.health")
            .str("group", s.group)
            .str("upstream", s.text)
            .boolean("healthy", false)
            .str("reason", why);
      }
    }
  }

  void tick() {
    if (stopped) return;
    const std::int64_t now = core::coarse_now_ms();
    for (const auto& g : groups) {
      for (std::size_t i = 0; i < g->size(); ++i) {
        MemberState& s = g->state(i);
        const std::int64_t at = s.drain_close_ms.load();
        if (s.draining() && at > 0 && now >= at) {
          s.drain_close_ms = 0;
          const std::string group = s.group, text = s.text;
          close(&s, SIZE_MAX, 0, 1012, "upstream draining", [group, text](std::size_t n) {
            log::Line(log::Level::info, "upstream.drain_closed").str("group", group).str("upstream", text).unum("sessions", n);
          });
        }
      }
      if (g->conf().rebalance.enabled) rebalance(*g, now);
    }
    tick_timer.expires_after(std::chrono::milliseconds(250));
    tick_timer.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->tick();
    });
  }

  // Closes a bounded number of sessions on the member furthest above its
  // weighted share, so that their reconnects land on the emptier members.
  void rebalance(const Group& g, std::int64_t now) {
    const auto& rb = g.conf().rebalance;
    Balance& b = balance[g.serial()];
    if (b.last_ms == 0) b.last_ms = now;
    b.tokens = std::min<double>(rb.max_moves_per_second,
                                b.tokens + rb.max_moves_per_second * static_cast<double>(now - b.last_ms) / 1000.0);
    b.last_ms = now;
    if (now < b.next_ms) return;
    b.next_ms = now + rb.interval.count();
    for (std::size_t i = 0; i < g.size(); ++i) g.state(i).over_share.store(false, std::memory_order_relaxed);
    std::int64_t total = 0;
    double weights = 0;
    std::vector<std::size_t> avail;
    for (std::size_t i = 0; i < g.size(); ++i) {
      const MemberState& s = g.state(i);
      if (g.member(i).backup || !s.healthy.load() || s.ejected(now) || s.draining()) continue;
      avail.push_back(i);
      total += s.live();
      weights += g.member(i).weight;
    }
    if (avail.size() < 2 || total < static_cast<std::int64_t>(avail.size()) * 2) return;
    std::size_t worst = avail.front();
    double worst_ratio = 0, worst_share = 0;
    for (std::size_t i : avail) {
      const double share = static_cast<double>(total) * g.member(i).weight / weights;
      const double ratio = static_cast<double>(g.state(i).live()) / share;
      if (ratio > worst_ratio) {
        worst_ratio = ratio;
        worst = i;
        worst_share = share;
      }
    }
    for (std::size_t i : avail) {
      const double share = static_cast<double>(total) * g.member(i).weight / weights;
      if (static_cast<double>(g.state(i).live()) > rb.max_ratio * share)
        g.state(i).over_share.store(true, std::memory_order_relaxed);
    }
    if (worst_ratio <= rb.max_ratio) return;
    const double excess = static_cast<double>(g.state(worst).live()) - worst_share;
    const auto moves = static_cast<std::size_t>(std::min(std::floor(b.tokens), std::ceil(excess)));
    if (moves == 0) return;
    b.tokens -= static_cast<double>(moves);
    const MemberState& s = g.state(worst);
    log::Line(log::Level::info, "upstream.rebalance")
        .str("group", s.group)
        .str("upstream", s.text)
        .num("sessions", s.live())
        .num("share", static_cast<std::int64_t>(worst_share))
        .unum("moves", moves);
    close(&s, moves, rb.min_age.count(), 1012, "rebalancing: upstream over its share",
          [group = s.group, text = s.text](std::size_t n) {
            count_group_event(obs::Registry::global().slot(obs::Registry::kMainSlot), GroupEvent::rebalanced, group,
                              text, n);
          });
  }

  void collect(std::vector<obs::Registry::Sample>& out) const {
    const std::int64_t now = core::coarse_now_ms();
    for (const auto& g : groups)
      for (std::size_t i = 0; i < g->size(); ++i) {
        const MemberState& s = g->state(i);
        const obs::Labels l{{"group", g->label()}, {"upstream", s.text}};
        out.push_back({"weir_upstream_member_available",
                       "1 when the member takes new sessions (healthy, not ejected, not draining, below max_connections)",
                       "gauge", l, g->available(i, now) ? 1.0 : 0.0});
        out.push_back({"weir_upstream_member_sessions", "Live sessions on the member (relaying or being set up), this instance",
                       "gauge", l, static_cast<double>(s.live())});
      }
  }
};

Supervisor::Supervisor(asio::io_context& io, CloseFn close) : impl_(std::make_shared<Impl>(io, std::move(close))) {
  impl_->collector = obs::Registry::global().add_collector(
      [impl = impl_.get()](std::vector<obs::Registry::Sample>& out) { impl->collect(out); });
  impl_->tick();
}

Supervisor::~Supervisor() { stop(); }

void Supervisor::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  obs::Registry::global().remove_collector(impl_->collector);
  impl_->tick_timer.cancel();
  for (auto& [_, c] : impl_->checkers)
    if (c.timer) c.timer->cancel();
}

void Supervisor::set_groups(std::vector<std::shared_ptr<const Group>> groups,
                            std::vector<std::shared_ptr<const net::TlsClient>> tls) {
  impl_->set(std::move(groups), std::move(tls));
}

std::vector<Supervisor::GroupStatus> Supervisor::status() const {
  std::vector<GroupStatus> out;
  const std::int64_t now = core::coarse_now_ms();
  for (const auto& g : impl_->groups) {
    GroupStatus gs{g->label(), g->conf().anonymous, policy_name(g->conf().policy), {}, 0};
    for (std::size_t i = 0; i < g->size(); ++i) {
      const MemberState& s = g->state(i);
      std::string last;
      if (auto it = impl_->checkers.find(&s); it != impl_->checkers.end()) last = it->second.last_error;
      gs.members.push_back({s.text, s.healthy.load(), s.ejected(now), s.draining(), g->member(i).backup, s.live(),
                            g->member(i).weight, last, prewarm_idle(*g, i)});
      gs.available += g->available(i, now) ? 1 : 0;
    }
    out.push_back(std::move(gs));
  }
  return out;
}

bool Supervisor::drain(const std::string& group, const std::string& member, bool on, std::chrono::milliseconds timeout) {
  const bool route_group = group.rfind("route/", 0) == 0;
  const std::string name = route_group ? group.substr(6) : group;
  for (const auto& g : impl_->groups) {
    if (g->conf().anonymous != route_group || g->label() != name) continue;
    for (std::size_t i = 0; i < g->size(); ++i) {
      MemberState& s = g->state(i);
      if (s.text != member) continue;
      const std::int64_t now = core::coarse_now_ms();
      if (on) {
        const auto t = timeout.count() > 0 ? timeout : g->conf().drain_timeout;
        s.drain_close_ms = t.count() > 0 ? now + t.count() : 0;
        s.admin_drain = true;
      } else {
        s.admin_drain = false;
        s.drain_close_ms = 0;
        s.up_since_ms = now;  // back: slow start from here
      }
      log::Line(log::Level::info, on ? "upstream.drain" : "upstream.undrain")
          .str("group", group)
          .str("upstream", member)
          .num("close_after_ms", on ? std::max<std::int64_t>(s.drain_close_ms.load() - now, 0) : 0);
      return true;
    }
  }
  return false;
}

}  // namespace weir::upstream
