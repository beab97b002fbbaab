#pragma once
// An upstream group compiled for one config generation (part of the
// Runtime, shared by every worker) and the choice of a member for a session
// (docs/configuration.md, "Upstream groups"):
//
//  - candidates: members that are healthy (active checks), not ejected
//    (passive), not draining and below max_connections; primaries first,
//    backups only when no primary is a candidate;
//  - a valid sticky cookie naming a candidate wins; otherwise the policy:
//    smooth weighted round robin (per worker, no shared state), weighted
//    least connections, two random choices (the less loaded of two picked
//    by weight), or Maglev consistent hashing on a key;
//  - weights ramp up over slow_start after a member (re)joins;
//  - each later attempt (a retry) skips the members already tried.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/upstream_group.h"
#include "upstream/maglev.h"
#include "upstream/members.h"

namespace weir::upstream {

class Group {
 public:
  explicit Group(std::shared_ptr<const config::UpstreamGroup> conf);

  const config::UpstreamGroup& conf() const { return *conf_; }
  const std::string& label() const { return label_; }
  std::size_t size() const { return states_.size(); }
  MemberState& state(std::size_t i) const { return *states_[i]; }
  const std::shared_ptr<MemberState>& state_ptr(std::size_t i) const { return states_[i]; }
  const config::GroupMember& member(std::size_t i) const { return conf_->members[i]; }
  std::uint64_t serial() const { return serial_; }

  // May take a new session now.
  bool available(std::size_t i, std::int64_t now_ms) const;
  // Its weight now: the configured one, scaled down during slow start (never below 1/10).
  double weight(std::size_t i, std::int64_t now_ms) const;
  // The member a sticky cookie's id names, or npos.
  std::size_t find_id(std::uint64_t id) const;
  const Maglev* maglev() const { return maglev_.get(); }

  // A session's result with member i (passive health): a failed connect,
  // TLS or upstream handshake, or success. Ejects after
  // outlier.consecutive_failures in a row, within max_ejected_percent;
  // returns true when this call ejected it.
  bool report(std::size_t i, bool ok, std::int64_t now_ms) const;

  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

 private:
  std::shared_ptr<const config::UpstreamGroup> conf_;
  std::string label_;
  std::vector<std::shared_ptr<MemberState>> states_;
  std::unique_ptr<Maglev> maglev_;
  std::uint64_t serial_;
};

// One worker's picking state: round-robin positions per group, and its
// random source. Lives on the worker (WorkerGateway).
class Picker {
 public:
  explicit Picker(unsigned worker) : worker_(worker), rng_(0x5eed0000ull + worker) {}
  unsigned worker() const { return worker_; }
  std::vector<double>& rr_state(const Group& g);
  std::uint64_t random() {  // xorshift64*
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    return rng_ * 0x2545f4914f6cdd1dull;
  }

 private:
  unsigned worker_;
  std::uint64_t rng_;
  std::unordered_map<std::uint64_t, std::vector<double>> rr_;  // by Group::serial
};

// What a pick may use from the request.
struct PickInput {
  std::string_view hash_key;        // the policy hash's key (already extracted)
  std::optional<std::uint64_t> sticky;  // a verified sticky cookie's member id
  bool sticky_yields = false;           // route rebalance_sticky: not to a member over its share
};

// The members one session tries, in order.
class Selection {
 public:
  Selection(const Group& g, Picker& p, PickInput in) : g_(g), p_(p), in_(in) {}
  // The next member to try, or npos when none is left (no candidate, or the
  // retries are used up). Picks the sticky member first when it is a candidate.
  std::size_t next(std::int64_t now_ms);
  std::size_t attempts() const { return tried_.size(); }
  // Whether the first pick honoured the sticky cookie.
  bool sticky_hit() const { return sticky_hit_; }
  // No member was a candidate at all on the first pick (503, not 502).
  bool none_available() const { return none_available_; }

 private:
  std::size_t policy_pick(const std::vector<std::size_t>& cand, std::int64_t now_ms);
  const Group& g_;
  Picker& p_;
  PickInput in_;
  std::vector<std::size_t> tried_;
  bool sticky_hit_ = false;
  bool none_available_ = false;
};

}  // namespace weir::upstream
