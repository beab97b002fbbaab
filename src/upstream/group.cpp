#include "upstream/group.h"

#include <algorithm>
#include <atomic>
#include <limits>

#include "core/clock.h"
#include "observability/log.h"

namespace weir::upstream {

namespace {

std::atomic<std::uint64_t> next_serial{1};

std::string state_key(const config::UpstreamGroup& g) { return g.anonymous ? "route/" + g.name : g.name; }

}  // namespace

Group::Group(std::shared_ptr<const config::UpstreamGroup> conf)
    : conf_(std::move(conf)), label_(conf_->name), serial_(next_serial.fetch_add(1)) {
  const std::string key = state_key(*conf_);
  std::vector<Maglev::Entry> entries;
  for (const auto& m : conf_->members) {
    auto s = member_state(key, label_, m.up.text);
    s->config_drain.store(m.drain, std::memory_order_relaxed);
    if (m.drain && conf_->drain_timeout.count() > 0 && s->drain_close_ms.load() == 0)
      s->drain_close_ms.store(core::coarse_now_ms() + conf_->drain_timeout.count());
    states_.push_back(std::move(s));
    entries.push_back({m.up.text, m.weight});
  }
  if (conf_->policy == config::UpstreamGroup::Policy::hash) maglev_ = std::make_unique<Maglev>(entries);
}

bool Group::available(std::size_t i, std::int64_t now_ms) const {
  const MemberState& s = *states_[i];
  if (!s.healthy.load(std::memory_order_relaxed) || s.ejected(now_ms) || s.draining()) return false;
  const auto max = conf_->members[i].max_connections;
  return max == 0 || s.live() < static_cast<std::int64_t>(max);
}

double Group::weight(std::size_t i, std::int64_t now_ms) const {
  const double w = conf_->members[i].weight;
  const auto window = conf_->slow_start.count();
  if (window <= 0) return w;
  const MemberState& s = *states_[i];
  const std::int64_t since =
      std::max(s.up_since_ms.load(std::memory_order_relaxed), s.ejected_until_ms.load(std::memory_order_relaxed));
  const std::int64_t age = now_ms - since;
  if (age >= window) return w;
  return w * std::max(0.1, static_cast<double>(std::max<std::int64_t>(age, 0)) / static_cast<double>(window));
}

std::size_t Group::find_id(std::uint64_t id) const {
  for (std::size_t i = 0; i < states_.size(); ++i)
    if (states_[i]->id == id) return i;
  return npos;
}

bool Group::report(std::size_t i, bool ok, std::int64_t now_ms) const {
  MemberState& s = *states_[i];
  if (ok) {
    s.failures.store(0, std::memory_order_relaxed);
    if (!s.ejected(now_ms)) s.ejections.store(0, std::memory_order_relaxed);
    return false;
  }
  const auto& o = conf_->outlier;
  const std::uint32_t n = s.failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (o.consecutive_failures == 0 || n < o.consecutive_failures || s.ejected(now_ms)) return false;
  std::size_t ejected = 0;
  for (const auto& m : states_) ejected += m->ejected(now_ms) ? 1 : 0;
  if ((ejected + 1) * 100 > static_cast<std::size_t>(o.max_ejected_percent) * states_.size()) return false;
  const std::uint32_t k = std::min<std::uint32_t>(s.ejections.fetch_add(1, std::memory_order_relaxed), 20);
  const std::int64_t len = std::min<std::int64_t>(o.base_ejection.count() << std::min<std::uint32_t>(k, 20),
                                                  o.max_ejection.count());
  // Two workers may both get here: the later store wins, harmlessly.
  s.ejected_until_ms.store(now_ms + len, std::memory_order_relaxed);
  s.failures.store(0, std::memory_order_relaxed);
  log::Line(log::Level::warn, "upstream.eject")
      .str("group", label_)
      .str("upstream", s.text)
      .num("ejection_ms", len)
      .unum("failures", n);
  return true;
}

std::vector<double>& Picker::rr_state(const Group& g) {
  auto& v = rr_[g.serial()];
  if (v.size() != g.size()) {
    // Each worker starts its sequence at another member (a head start of
    // less than any weight), so the first sessions of N workers spread.
    v.assign(g.size(), 0.0);
    if (!v.empty()) v[worker_ % v.size()] = 0.5;
  }
  if (rr_.size() > 256) {
    // Groups of older generations: start over (positions are only a spread).
    std::vector<double> keep = std::move(v);
    rr_.clear();
    return rr_[g.serial()] = std::move(keep);
  }
  return v;
}

std::size_t Selection::next(std::int64_t now_ms) {
  const auto& conf = g_.conf();
  if (tried_.size() > conf.retries) return Group::npos;
  std::vector<std::size_t> cand;
  for (int backup = 0; backup < 2 && cand.empty(); ++backup) {
    for (std::size_t i = 0; i < g_.size(); ++i) {
      if (g_.member(i).backup != (backup == 1)) continue;
      if (std::find(tried_.begin(), tried_.end(), i) != tried_.end()) continue;
      if (g_.available(i, now_ms)) cand.push_back(i);
    }
  }
  if (cand.empty()) {
    if (tried_.empty()) none_available_ = true;
    return Group::npos;
  }
  std::size_t pick = Group::npos;
  if (tried_.empty() && in_.sticky) {
    const std::size_t s = g_.find_id(*in_.sticky);
    const bool yields = in_.sticky_yields && s != Group::npos && g_.state(s).over_share.load(std::memory_order_relaxed);
    if (s != Group::npos && !yields && std::find(cand.begin(), cand.end(), s) != cand.end()) {
      pick = s;
      sticky_hit_ = true;
    }
  }
  if (pick == Group::npos) pick = policy_pick(cand, now_ms);
  tried_.push_back(pick);
  return pick;
}

std::size_t Selection::policy_pick(const std::vector<std::size_t>& cand, std::int64_t now_ms) {
  using Policy = config::UpstreamGroup::Policy;
  if (cand.size() == 1) return cand.front();
  switch (g_.conf().policy) {
    case Policy::hash: {
      const Maglev* m = g_.maglev();
      const std::uint64_t h = stable_hash(in_.hash_key);
      // Rehash past members that are not candidates (down, or tried): the
      // keys of the others stay where they are.
      for (std::uint64_t n = 0; m != nullptr && n < 32; ++n) {
        const std::size_t i = m->lookup(n == 0 ? h : remix(h, n));
        if (std::find(cand.begin(), cand.end(), i) != cand.end()) return i;
      }
      return cand[h % cand.size()];
    }
    case Policy::least_conn: {
      // Fewest live sessions per unit of weight; ties go round robin.
      std::size_t best = Group::npos;
      double best_load = std::numeric_limits<double>::max();
      const std::size_t start = p_.random() % cand.size();
      for (std::size_t k = 0; k < cand.size(); ++k) {
        const std::size_t i = cand[(start + k) % cand.size()];
        const double load = static_cast<double>(g_.state(i).live() + 1) / g_.weight(i, now_ms);
        if (load < best_load) {
          best_load = load;
          best = i;
        }
      }
      return best;
    }
    case Policy::random_two: {
      double total = 0;
      for (std::size_t i : cand) total += g_.weight(i, now_ms);
      const auto draw = [&] {
        double r = static_cast<double>(p_.random() >> 11) * (1.0 / 9007199254740992.0) * total;
        for (std::size_t i : cand) {
          r -= g_.weight(i, now_ms);
          if (r < 0) return i;
        }
        return cand.back();
      };
      const std::size_t a = draw();
      std::size_t b = draw();
      for (int k = 0; k < 4 && b == a; ++k) b = draw();
      const double la = static_cast<double>(g_.state(a).live()) / g_.weight(a, now_ms);
      const double lb = static_cast<double>(g_.state(b).live()) / g_.weight(b, now_ms);
      return lb < la ? b : a;
    }
    case Policy::round_robin:
    default: {
      // Smooth weighted round robin (as nginx): each pick, every candidate
      // gains its weight; the richest is chosen and pays the total.
      auto& cur = p_.rr_state(g_);
      double total = 0;
      std::size_t best = cand.front();
      for (std::size_t i : cand) {
        const double w = g_.weight(i, now_ms);
        cur[i] += w;
        total += w;
        if (cur[i] > cur[best]) best = i;
      }
      cur[best] -= total;
      return best;
    }
  }
}

}  // namespace weir::upstream
