// Upstream groups: config, policies' spread, Maglev movement, sticky cookie
// signing, slow start, passive ejection limits.

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "../config/error_of.h"
#include "upstream/group.h"
#include "upstream/maglev.h"
#include "upstream/sticky.h"

namespace weir::upstream {
namespace {

using config::testing::error_of;

int test_serial = 0;

// A group named uniquely per test (member states are kept by group name).
std::shared_ptr<config::UpstreamGroup> make_group(config::UpstreamGroup::Policy p,
                                                  std::vector<std::pair<std::string, unsigned>> members) {
  auto g = std::make_shared<config::UpstreamGroup>();
  g->name = "g" + std::to_string(++test_serial) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  g->policy = p;
  for (auto& [text, w] : members) {
    config::GroupMember m;
    m.up = *config::parse_upstream(text);
    m.weight = w;
    g->members.push_back(std::move(m));
  }
  g->retries = static_cast<unsigned>(g->members.size() - 1);
  return g;
}

std::map<std::size_t, int> spread(const Group& g, Picker& p, int n, bool count_live = false,
                                  std::function<std::string(int)> key = nullptr) {
  std::map<std::size_t, int> out;
  const auto now = core::coarse_now_ms();
  for (int i = 0; i < n; ++i) {
    std::string k = key ? key(i) : "";
    Selection s(g, p, {k, std::nullopt});
    const std::size_t m = s.next(now);
    ++out[m];
    if (count_live) g.state(m).add_live(0, 1);
  }
  return out;
}

TEST(Balancer, WeightedRoundRobinFollowsTheWeightsExactly) {
  Group g(make_group(config::UpstreamGroup::Policy::round_robin, {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 2}, {"127.0.0.1:3", 5}}));
  Picker p(0);
  auto s = spread(g, p, 100'000);
  EXPECT_EQ(s[0], 12'500);
  EXPECT_EQ(s[1], 25'000);
  EXPECT_EQ(s[2], 62'500);
}

TEST(Balancer, SmoothRoundRobinInterleaves) {
  Group g(make_group(config::UpstreamGroup::Policy::round_robin, {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 1}, {"127.0.0.1:3", 1}}));
  Picker p(0);
  const auto now = core::coarse_now_ms();
  std::vector<std::size_t> seq;
  for (int i = 0; i < 6; ++i) seq.push_back(Selection(g, p, {}).next(now));
  EXPECT_NE(seq[0], seq[1]);
  EXPECT_NE(seq[1], seq[2]);
  EXPECT_EQ(seq[0], seq[3]);
}

TEST(Balancer, LeastConnectionsFollowsWeightsOfLiveSessions) {
  Group g(make_group(config::UpstreamGroup::Policy::least_conn, {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 3}}));
  Picker p(0);
  auto s = spread(g, p, 100'000, /*count_live=*/true);
  EXPECT_NEAR(s[0], 25'000, 10);
  EXPECT_NEAR(s[1], 75'000, 10);
  EXPECT_EQ(g.state(0).live() + g.state(1).live(), 100'000);
}

TEST(Balancer, TwoRandomChoicesBalancesLiveSessions) {
  Group g(make_group(config::UpstreamGroup::Policy::random_two, {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 1}, {"127.0.0.1:3", 2}}));
  Picker p(3);
  auto s = spread(g, p, 100'000, true);
  // Two-choice keeps the spread close to the weights (within 1%).
  EXPECT_NEAR(s[0], 25'000, 1'000);
  EXPECT_NEAR(s[1], 25'000, 1'000);
  EXPECT_NEAR(s[2], 50'000, 1'000);
}

TEST(Balancer, HashSpreadsKeysByWeightAndIsStable) {
  auto conf = make_group(config::UpstreamGroup::Policy::hash, {{"10.0.0.1:80", 1}, {"10.0.0.2:80", 1}, {"10.0.0.3:80", 2}});
  Group g(conf);
  Picker p(0);
  auto key = [](int i) { return "user-" + std::to_string(i); };
  auto s = spread(g, p, 100'000, false, key);
  EXPECT_NEAR(s[0], 25'000, 1'500);
  EXPECT_NEAR(s[1], 25'000, 1'500);
  EXPECT_NEAR(s[2], 50'000, 1'500);
  // The same key always lands on the same member, on any picker (any worker, any instance).
  Picker other(7);
  const auto now = core::coarse_now_ms();
  for (int i = 0; i < 1000; ++i) {
    const std::string k = key(i);
    EXPECT_EQ(Selection(g, p, {k, std::nullopt}).next(now), Selection(g, other, {k, std::nullopt}).next(now));
  }
}

// Adding a fourth member of equal weight should move about 1/4 of the keys,
// and only onto the new member.
TEST(Balancer, MaglevMovesAboutOneNthOfTheKeysWhenAMemberIsAdded) {
  const std::vector<std::string> names{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80"};
  std::vector<Maglev::Entry> three, four;
  for (std::size_t i = 0; i < 4; ++i) {
    if (i < 3) three.push_back({names[i], 1});
    four.push_back({names[i], 1});
  }
  Maglev a(three), b(four);
  int moved = 0, moved_elsewhere = 0;
  const int n = 100'000;
  for (int i = 0; i < n; ++i) {
    const auto h = stable_hash("key" + std::to_string(i));
    const auto before = a.lookup(h), after = b.lookup(h);
    if (before != after) {
      ++moved;
      if (after != 3) ++moved_elsewhere;
    }
  }
  EXPECT_NEAR(moved / double(n), 0.25, 0.03);
  // Maglev is not perfectly minimal: a few keys shuffle among the old members.
  EXPECT_LT(moved_elsewhere / double(n), 0.03);
}

TEST(Balancer, MaglevMovesAboutOneNthWhenAMemberIsRemoved) {
  std::vector<Maglev::Entry> five, four;
  std::vector<std::string> names;
  for (int i = 0; i < 5; ++i) names.push_back("h" + std::to_string(i) + ":80");
  for (int i = 0; i < 5; ++i) {
    five.push_back({names[i], 1});
    if (i != 2) four.push_back({names[i], 1});
  }
  Maglev a(five), b(four);
  int moved = 0;
  const int n = 100'000;
  for (int i = 0; i < n; ++i) {
    const auto h = stable_hash("k" + std::to_string(i));
    std::string_view before = names[a.lookup(h)];
    std::string_view after = four[b.lookup(h)].name;
    moved += before != after;
  }
  EXPECT_NEAR(moved / double(n), 0.20, 0.03);
}

TEST(Balancer, UnavailableMembersAreSkippedAndOthersKeepTheirKeys) {
  auto conf = make_group(config::UpstreamGroup::Policy::hash, {{"10.1.0.1:80", 1}, {"10.1.0.2:80", 1}, {"10.1.0.3:80", 1}});
  Group g(conf);
  Picker p(0);
  const auto now = core::coarse_now_ms();
  std::vector<std::size_t> before;
  for (int i = 0; i < 3000; ++i) before.push_back(Selection(g, p, {std::to_string(i), std::nullopt}).next(now));
  g.state(1).healthy = false;
  for (int i = 0; i < 3000; ++i) {
    const auto m = Selection(g, p, {std::to_string(i), std::nullopt}).next(now);
    EXPECT_NE(m, 1u);
    if (before[i] != 1) {
      EXPECT_EQ(m, before[i]) << i;
    }
  }
  g.state(1).healthy = true;
}

TEST(Balancer, RetriesSkipTriedMembersAndStopAtTheLimit) {
  auto conf = make_group(config::UpstreamGroup::Policy::round_robin, {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 1}, {"127.0.0.1:3", 1}});
  conf->retries = 1;
  Group g(conf);
  Picker p(0);
  Selection s(g, p, {});
  const auto now = core::coarse_now_ms();
  const auto a = s.next(now), b = s.next(now);
  EXPECT_NE(a, b);
  EXPECT_NE(b, Group::npos);
  EXPECT_EQ(s.next(now), Group::npos);  // 1 try + 1 retry
  EXPECT_FALSE(s.none_available());
}

TEST(Balancer, BackupsOnlyWhenNoPrimaryIsAvailable) {
  auto conf = make_group(config::UpstreamGroup::Policy::round_robin, {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 1}});
  conf->members[1].backup = true;
  Group g(conf);
  Picker p(0);
  auto s = spread(g, p, 100);
  EXPECT_EQ(s[0], 100);
  g.state(0).healthy = false;
  s = spread(g, p, 100);
  EXPECT_EQ(s[1], 100);
  g.state(1).admin_drain = true;
  Selection none(g, p, {});
  EXPECT_EQ(none.next(core::coarse_now_ms()), Group::npos);
  EXPECT_TRUE(none.none_available());
}

TEST(Balancer, MaxConnectionsMakesAMemberUnavailable) {
  auto conf = make_group(config::UpstreamGroup::Policy::round_robin, {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 1}});
  conf->members[0].max_connections = 2;
  Group g(conf);
  Picker p(0);
  auto s = spread(g, p, 10, /*count_live=*/true);
  EXPECT_EQ(s[0], 2);
  EXPECT_EQ(s[1], 8);
}

TEST(Balancer, SlowStartRampsTheWeight) {
  auto conf = make_group(config::UpstreamGroup::Policy::round_robin, {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 1}});
  conf->slow_start = std::chrono::milliseconds(10'000);
  Group g(conf);
  const auto now = core::coarse_now_ms();
  g.state(0).up_since_ms = now - 100'000;  // long up
  g.state(1).up_since_ms = now - 2'500;    // a quarter into its ramp
  EXPECT_DOUBLE_EQ(g.weight(0, now), 1.0);
  EXPECT_NEAR(g.weight(1, now), 0.25, 0.01);
  g.state(1).up_since_ms = now;  // just back: the floor
  EXPECT_NEAR(g.weight(1, now), 0.1, 1e-9);
  Picker p(0);
  g.state(1).up_since_ms = now - 5'000;  // half
  auto s = spread(g, p, 30'000);
  EXPECT_NEAR(s[1] / 30'000.0, 1.0 / 3.0, 0.01);
}

TEST(Balancer, EjectionAfterConsecutiveFailuresWithinTheEjectedShare) {
  auto conf = make_group(config::UpstreamGroup::Policy::round_robin,
                         {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 1}, {"127.0.0.1:3", 1}, {"127.0.0.1:4", 1}});
  conf->outlier.consecutive_failures = 3;
  conf->outlier.base_ejection = std::chrono::milliseconds(1000);
  conf->outlier.max_ejected_percent = 50;
  Group g(conf);
  const std::int64_t now = 1'000'000;
  EXPECT_FALSE(g.report(0, false, now));
  EXPECT_FALSE(g.report(0, true, now));  // a success resets the streak
  EXPECT_FALSE(g.report(0, false, now));
  EXPECT_FALSE(g.report(0, false, now));
  EXPECT_TRUE(g.report(0, false, now));
  EXPECT_TRUE(g.state(0).ejected(now + 999));
  EXPECT_FALSE(g.state(0).ejected(now + 1000));
  for (int i = 0; i < 3; ++i) g.report(1, false, now);
  EXPECT_TRUE(g.state(1).ejected(now));
  // A third would be 75% of the group: refused.
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(g.report(2, false, now));
  EXPECT_FALSE(g.state(2).ejected(now));
  // Ejected again after it ends: twice as long.
  for (int i = 0; i < 3; ++i) g.report(0, false, now + 2000);
  EXPECT_EQ(g.state(0).ejected_until_ms.load(), now + 2000 + 2000);
}

TEST(Sticky, SignedCookieRoundTripsAndForgeriesFail) {
  const std::string key = "0123456789abcdef0123";
  const auto id = member_id("chat", "10.0.0.1:80");
  const std::string v = sign_sticky(key, "chat", id);
  EXPECT_EQ(verify_sticky(key, "chat", v), id);
  EXPECT_EQ(verify_sticky("another key of 16+ bytes", "chat", v), std::nullopt);
  EXPECT_EQ(verify_sticky(key, "other-group", v), std::nullopt);
  // Naming another member with the old signature.
  const std::string other = sign_sticky(key, "chat", member_id("chat", "10.0.0.2:80"));
  const std::string forged = other.substr(0, other.find('.')) + v.substr(v.find('.'));
  EXPECT_EQ(verify_sticky(key, "chat", forged), std::nullopt);
  for (const char* bad : {"", ".", "abc", "abc.def", "!!!!!!!!!!!.xxxxxxxxxxxxxxxxxxxxxx"})
    EXPECT_EQ(verify_sticky(key, "chat", bad), std::nullopt) << bad;
}

TEST(Balancer, AValidStickyCookieWinsWhileItsMemberIsAvailable) {
  auto conf = make_group(config::UpstreamGroup::Policy::round_robin, {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 1}});
  Group g(conf);
  Picker p(0);
  const auto now = core::coarse_now_ms();
  for (int i = 0; i < 10; ++i) {
    Selection s(g, p, {"", g.state(1).id});
    EXPECT_EQ(s.next(now), 1u);
    EXPECT_TRUE(s.sticky_hit());
  }
  g.state(1).admin_drain = true;
  Selection s(g, p, {"", g.state(1).id});
  EXPECT_EQ(s.next(now), 0u);
  EXPECT_FALSE(s.sticky_hit());
  g.state(1).admin_drain = false;
}

TEST(Balancer, AStickyClientYieldsAMemberOverItsShareOnlyWhenAllowed) {
  auto conf = make_group(config::UpstreamGroup::Policy::round_robin, {{"127.0.0.1:1", 1}, {"127.0.0.1:2", 1}});
  Group g(conf);
  Picker p(0);
  const auto now = core::coarse_now_ms();
  g.state(1).over_share = true;
  int elsewhere = 0;
  for (int i = 0; i < 10; ++i) {
    Selection pinned(g, p, {"", g.state(1).id, false});
    EXPECT_EQ(pinned.next(now), 1u);  // not allowed to move: back to its member
    Selection yields(g, p, {"", g.state(1).id, true});
    elsewhere += yields.next(now) == 0u;
    EXPECT_FALSE(yields.sticky_hit());
  }
  EXPECT_EQ(elsewhere, 5);  // the policy decides (round robin over both)
  g.state(1).over_share = false;
  Selection back(g, p, {"", g.state(1).id, true});
  EXPECT_EQ(back.next(now), 1u);
  EXPECT_TRUE(back.sticky_hit());
}

TEST(UpstreamGroupConfig, NamedGroupsAndRoutes) {
  const auto c = config::load_string(R"(listeners: [{port: 1}]
upstream_groups:
  - name: chat
    policy: hash
    hash_key: header:X-Tenant
    members:
      - 127.0.0.1:9001
      - {address: 127.0.0.1:9002, weight: 3, max_connections: 10}
      - {address: 127.0.0.1:9003, backup: true}
    retries: 1
    health_check: {type: websocket, path: /health, interval: 1s, rise: 1, fall: 2}
    outlier_detection: {consecutive_failures: 2, base_ejection: 5s}
    slow_start: 30s
    sticky: {cookie: {name: srv, key: 0123456789abcdef, ttl: 1h}}
routes:
  - name: a
    upstream_group: chat
  - name: b
    match: {path: /b}
    upstreams: [127.0.0.1:9100, 127.0.0.1:9101]
)", "t.yaml");
  ASSERT_EQ(c.upstream_groups.size(), 1u);
  const auto& g = *c.upstream_groups[0];
  EXPECT_EQ(g.policy, config::UpstreamGroup::Policy::hash);
  EXPECT_EQ(g.hash.from, config::HashKey::From::header);
  EXPECT_EQ(g.hash.name, "x-tenant");
  EXPECT_EQ(g.members[1].weight, 3u);
  EXPECT_EQ(g.members[1].max_connections, 10u);
  EXPECT_TRUE(g.members[2].backup);
  EXPECT_EQ(g.retries, 1u);
  EXPECT_EQ(g.health.type, config::HealthCheck::Type::websocket);
  EXPECT_EQ(g.health.fall, 2u);
  EXPECT_EQ(g.outlier.consecutive_failures, 2u);
  EXPECT_TRUE(g.sticky_cookie);
  EXPECT_EQ(g.cookie.name, "srv");
  EXPECT_EQ(c.routes[0].group.get(), &g);
  EXPECT_EQ(c.routes[0].upstreams.size(), 3u);
  EXPECT_TRUE(c.routes[1].group->anonymous);
  EXPECT_EQ(c.routes[1].group->retries, 1u);
}

TEST(UpstreamGroupConfig, ErrorsPointAtTheKey) {
  const std::string head = "listeners: [{port: 1}]\nupstream_groups:\n  - name: g\n    members: [127.0.0.1:1]\n";
  EXPECT_EQ(error_of(head + "routes:\n  - upstream_group: nope\n"),
            "t.yaml:6:21: no upstream group named 'nope' (known: g)");
  EXPECT_EQ(error_of(head + "routes:\n  - upstream_group: g\n    upstreams: [echo]\n"),
            "t.yaml:7:5: use either 'upstreams' or 'upstream_group' in a route, not both");
  EXPECT_EQ(error_of(head + "    policy: fastest\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:5:13: 'policy' must be one of round_robin, least_conn, random_two, hash, got 'fastest'");
  EXPECT_EQ(error_of(head + "    hash_key: ip\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:5:5: 'hash_key' needs 'policy: hash'");
  EXPECT_EQ(error_of(head + "    sticky: {cookie: {key: short}}\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:5:28: 'sticky.cookie.key' must be at least 16 bytes (it signs the cookie)");
  EXPECT_EQ(error_of(head + "  - name: g\n    members: [echo]\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:5:5: duplicate upstream group 'g' (first at line 3)");
  EXPECT_EQ(error_of("listeners: [{port: 1}]\nroutes: [{upstreams: [{address: echo, weight: 0}]}]\n"),
            "t.yaml:2:47: 'weight' must be an integer 1-1000");
  EXPECT_EQ(error_of("listeners: [{port: 1}]\nroutes: [{upstreams: [127.0.0.1:1, 127.0.0.1:1]}]\n"),
            "t.yaml:2:36: upstream '127.0.0.1:1' is listed twice (first at line 2)");
}

TEST(UpstreamGroupConfig, SessionMapNeedsRedisState) {
  const std::string group =
      "upstream_groups:\n  - name: g\n    members: [127.0.0.1:1, 127.0.0.1:2]\n"
      "    sticky: {session_map: {key: claim:sub, ttl: 10m}}\nroutes: [{upstream_group: g}]\n";
  const auto c = config::load_string("listeners: [{port: 1}]\nstate: {backend: redis, url: redis://127.0.0.1}\n" + group,
                                     "t.yaml");
  const auto& g = *c.upstream_groups[0];
  EXPECT_TRUE(g.session_map);
  EXPECT_FALSE(g.sticky_cookie);
  EXPECT_EQ(g.map.key.from, config::HashKey::From::claim);
  EXPECT_EQ(g.map.key.name, "sub");
  EXPECT_EQ(g.map.ttl.count(), 600'000);
  EXPECT_EQ(error_of("listeners: [{port: 1}]\n" + group),
            "t.yaml:5:14: 'session_map' needs 'state: {backend: redis}' (it lives in Redis)");
  const std::string redis = "listeners: [{port: 1}]\nstate: {backend: redis, url: redis://127.0.0.1}\n"
                            "upstream_groups:\n  - name: g\n    members: [127.0.0.1:1]\n";
  EXPECT_EQ(error_of(redis + "    sticky: {session_map: {key: body}}\nroutes: [{upstream_group: g}]\n"),
            "t.yaml:6:33: 'sticky.session_map.key' must be ip, header:NAME, cookie:NAME, query:NAME or claim:PATH, "
            "got 'body'");
  EXPECT_EQ(error_of(redis + "    sticky: {session_map: {key: ip, ttl: 10ms}}\nroutes: [{upstream_group: g}]\n"),
            "t.yaml:6:42: 'sticky.session_map.ttl' must be at least 1s");
  EXPECT_EQ(error_of(redis + "    sticky: {session_map: {key: ip}, cookie: {key: 0123456789abcdef}}\n"
                             "routes: [{upstream_group: g}]\n"),
            "t.yaml:6:14: 'sticky' takes 'cookie' or 'session_map', not both");
  EXPECT_EQ(error_of(redis + "    sticky: {}\nroutes: [{upstream_group: g}]\n"),
            "t.yaml:6:13: missing required key 'cookie' in sticky (or 'session_map')");
}

TEST(UpstreamGroupConfig, RebalanceStickyNeedsBoth) {
  const std::string head = "listeners: [{port: 1}]\nupstream_groups:\n  - name: g\n    members: [127.0.0.1:1]\n";
  EXPECT_EQ(error_of(head + "    rebalance: {}\nroutes: [{upstream_group: g, rebalance_sticky: true}]\n"),
            "t.yaml:6:30: 'rebalance_sticky' needs an upstream group with both 'rebalance' and 'sticky'");
  const auto c = config::load_string(head + "    rebalance: {}\n    sticky: {cookie: {key: 0123456789abcdef}}\n"
                                            "routes: [{upstream_group: g, rebalance_sticky: true}]\n",
                                     "t.yaml");
  EXPECT_TRUE(c.routes[0].rebalance_sticky);
}

TEST(Sticky, MemberIdsAsTheSessionMapKeepsThem) {
  EXPECT_EQ(parse_member_id("00000000000000ff"), 255u);
  EXPECT_EQ(parse_member_id("ffffffffffffffff"), UINT64_MAX);
  for (const char* bad : {"", "ff", "0000000000000000f", "000000000000000g", "-000000000000001"})
    EXPECT_FALSE(parse_member_id(bad)) << bad;
}

}  // namespace
}  // namespace weir::upstream
