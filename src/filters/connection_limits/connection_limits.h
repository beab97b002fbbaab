#pragma once
// connection_limits and user_limits: how many connections a key may open per
// second (a token bucket: rate + burst) and hold at once, refused with 429
// and Retry-After before any upstream is contacted. Counted in the process's
// state::Counters (shared by every worker), or with state.backend redis in
// state::SharedCounters (shared by every instance; the handshake is pending
// until Redis answers).
//
//   connection_limits (runs early, before authentication, so failed logins
//   spend the budget too): per ip | route | global
//     connection_limits:
//       - {per: ip, connections_per_second: 10, burst: 20}
//       - {per: ip, concurrent: 100}
//       - {per: global, concurrent: 5000}
//   user_limits (runs after jwt: keyed on the token's subject, or on the
//   client address when the request has no user):
//     user_limits:
//       - {concurrent: 3}
//       - {connections_per_second: 1, burst: 5}
//
// Keys: ip and user are per route (route name + value), route is the route,
// global is every route that names it. The client address is the one
// ip_policy sees (trusted_proxies, PROXY protocol).

#include <memory>
#include <string>
#include <vector>

#include "config/filter_reader.h"
#include "filters/api.h"

namespace weir::filters {

class ConnectionLimitsFilter final : public Filter {
 public:
  enum class Per : std::uint8_t { ip, user, route, global };
  struct Rule {
    Per per = Per::ip;
    double rate = 0, burst = 0;   // connections per second; 0 = no rate rule
    std::uint32_t concurrent = 0; // 0 = no concurrency rule
    bool operator==(const Rule&) const = default;
  };
  explicit ConnectionLimitsFilter(std::vector<Rule> rules) : rules_(std::move(rules)) {}
  static std::shared_ptr<config::FilterSettings> parse_connection(const config::FilterReader& value);
  static std::shared_ptr<config::FilterSettings> parse_user(const config::FilterReader& value);

  // Slots are held until the session ends.
  unsigned hooks() const override {
    for (const auto& r : rules_)
      if (r.concurrent > 0) return kHandshake | kSession;
    return kHandshake;
  }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  void declare_metrics(obs::Registry& reg, const std::string& route) const override;

  const std::vector<Rule>& rules() const { return rules_; }
  // Per rule: [0] its rate refusals, [1] its concurrency refusals.
  obs::CounterId hits(std::size_t rule, bool concurrent) const { return hits_[rule * 2 + (concurrent ? 1 : 0)]; }

 private:
  std::vector<Rule> rules_;
  mutable std::vector<obs::CounterId> hits_;
};

std::string_view per_name(ConnectionLimitsFilter::Per p);

}  // namespace weir::filters
