// The Redis store's parts that need no server: the state block of the
// config, key derivation, script arguments and replies, the lease book.
// The scripts themselves run against a real redis-server in
// tests/integration/test_redis_limits.py.

#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <string>

#include "../config/error_of.h"
#include "config/config.h"
#include "state/redis_scripts.h"

namespace weir::state::redis {
namespace {

using config::testing::error_of;

constexpr const char* kMinimal =
    "listeners:\n"
    "  - port: 8080\n"
    "routes:\n"
    "  - upstreams: echo\n";

TEST(StateConfig, RedisBlockParsesWithDefaults) {
  ::setenv("WEIR_TEST_REDIS_PW", "s3cret", 1);
  const auto c = config::load_string(std::string(kMinimal) +
                                         "state:\n  backend: redis\n  url: redis://10.0.0.5:6380/2\n"
                                         "  password: ${WEIR_TEST_REDIS_PW}\n",
                                     "t.yaml");
  EXPECT_EQ(c.state.backend, config::SharedState::Backend::redis);
  EXPECT_EQ(c.state.host, "10.0.0.5");
  EXPECT_EQ(c.state.port, 6380);
  EXPECT_EQ(c.state.db, 2u);
  EXPECT_EQ(c.state.password, "s3cret");
  EXPECT_FALSE(c.state.refuse_when_down);
  EXPECT_EQ(c.state.lease_ttl.count(), 15'000);
  EXPECT_EQ(c.state.key_prefix, "weir:");
  EXPECT_EQ(config::load_string(kMinimal, "t.yaml").state.backend, config::SharedState::Backend::local);
}

TEST(StateConfig, UrlForms) {
  config::SharedState s;
  std::string why;
  ASSERT_TRUE(config::parse_redis_url("redis://cache", s, why));
  EXPECT_EQ(s.host, "cache");
  EXPECT_EQ(s.port, 6379);
  ASSERT_TRUE(config::parse_redis_url("redis://[::1]:7000/15", s, why));
  EXPECT_EQ(s.host, "::1");
  EXPECT_EQ(s.port, 7000);
  EXPECT_EQ(s.db, 15u);
  EXPECT_FALSE(config::parse_redis_url("http://cache", s, why));
  EXPECT_FALSE(config::parse_redis_url("redis://:pw@cache", s, why));
  EXPECT_FALSE(config::parse_redis_url("redis://cache:0", s, why));
  EXPECT_FALSE(config::parse_redis_url("redis://cache/16", s, why));
  EXPECT_FALSE(config::parse_redis_url("redis://", s, why));
}

TEST(StateConfig, ErrorsNameFileLineColumn) {
  const std::string base = std::string(kMinimal) + "state:\n";
  EXPECT_EQ(error_of(base + "  backend: memcached\n"),
            "t.yaml:6:12: 'state.backend' must be local or redis, got 'memcached'");
  EXPECT_EQ(error_of(base + "  backend: redis\n"), "t.yaml:6:3: missing required key 'url' in state (backend: redis)");
  EXPECT_EQ(error_of(base + "  backend: redis\n  url: redis://h:99999\n"),
            "t.yaml:7:8: 'state.url' has an invalid port (1-65535), got 'redis://h:99999'");
  EXPECT_EQ(error_of(base + "  backend: redis\n  url: redis://h\n  on_redis_down: crash\n"),
            "t.yaml:8:18: 'state.on_redis_down' must be local or refuse, got 'crash'");
  EXPECT_EQ(error_of(base + "  backend: redis\n  url: redis://h\n  lease_ttl: 100ms\n"),
            "t.yaml:8:14: 'state.lease_ttl' must be between 1s and 1h");
  EXPECT_EQ(error_of(base + "  url: redis://h\n"), "t.yaml:6:3: 'state.url' is only for backend: redis");
}

TEST(RedisKeys, PrefixedAndDistinct) {
  EXPECT_EQ(leases_key("weir:"), "weir:leases");
  EXPECT_EQ(counter_key("weir:", "r|chat|user|alice|conn"), "weir:c:r|chat|user|alice|conn");
  // A filter key can never name the lease set.
  EXPECT_NE(counter_key("weir:", "leases"), leases_key("weir:"));
  EXPECT_EQ(counter_key("other:", "global|conn"), "other:c:global|conn");
}

TEST(RedisScripts, ShaPerScriptAsRedisComputesIt) {
  std::set<std::string> shas;
  for (std::size_t i = 0; i < kScripts; ++i) {
    const std::string& sha = script_sha1(static_cast<Script>(i));
    EXPECT_EQ(sha.size(), 40u);
    EXPECT_EQ(sha.find_first_not_of("0123456789abcdef"), std::string::npos);
    shas.insert(sha);
  }
  EXPECT_EQ(shas.size(), kScripts);
}

TEST(RedisScripts, AdmitCallLaysOutRatesThenSlots) {
  Admission a;
  a.rates.push_back({"r|x|ip|1.2.3.4|rate", 0.5, 3});
  a.rates.push_back({"global|rate", 1000, 2000});
  a.slots.push_back({"r|x|user|bob|conn", 3});
  const Call c = admit_call("p:", "inst:1", a);
  EXPECT_EQ(c.script, Script::admit);
  EXPECT_EQ(c.keys, (std::vector<std::string>{"p:leases", "p:c:r|x|ip|1.2.3.4|rate", "p:c:global|rate",
                                              "p:c:r|x|user|bob|conn"}));
  EXPECT_EQ(c.args, (std::vector<std::string>{"inst:1", "2", "1", "0.5", "3", "1000", "2000", "3"}));
}

TEST(RedisScripts, GrantCallAsksWholeTokens) {
  const Call c = grant_call("w:", "m|chat|user|alice|in|msgs", 10, 20, 3.7);
  EXPECT_EQ(c.script, Script::grant);
  EXPECT_EQ(c.keys, (std::vector<std::string>{"w:c:m|chat|user|alice|in|msgs"}));
  EXPECT_EQ(c.args, (std::vector<std::string>{"10", "20", "3"}));
  // Byte rates keep every digit (a rounded rate would drift between instances).
  EXPECT_EQ(grant_call("w:", "k", 1048577, 2097154, 1).args[0], "1048577");
}

TEST(RedisScripts, AdmissionReplies) {
  using K = AdmissionResult::Kind;
  EXPECT_EQ(admission_result(0, 0, 0).kind, K::admitted);
  const auto rate = admission_result(1, 2, 4500);
  EXPECT_EQ(rate.kind, K::rate_refused);
  EXPECT_EQ(rate.index, 1u);  // the script counts from 1
  EXPECT_EQ(rate.retry_ms, 4500);
  EXPECT_EQ(admission_result(1, 1, 0).retry_ms, 1);  // never "retry now" for a refusal
  const auto slot = admission_result(2, 1, 0);
  EXPECT_EQ(slot.kind, K::slot_refused);
  EXPECT_EQ(slot.index, 0u);
  EXPECT_EQ(admission_result(7, 0, 0).kind, K::unavailable);
}

TEST(LeaseBook, CountsPerKeyAndForgetsAtZero) {
  LeaseBook b;
  b.add("k1");
  b.add("k1");
  b.add("k2");
  EXPECT_EQ(b.held("k1"), 2u);
  EXPECT_EQ(b.keys(), 2u);
  EXPECT_TRUE(b.remove("k2"));
  EXPECT_EQ(b.keys(), 1u);
  EXPECT_FALSE(b.remove("k2"));  // a release without an acquire changes nothing
  EXPECT_TRUE(b.remove("k1"));
  EXPECT_EQ(b.held("k1"), 1u);
}

TEST(LeaseBook, ResyncMovesEveryCountToTheNewLease) {
  LeaseBook b;
  b.add("a");
  b.add("a");
  b.add("b");
  const Call c = b.resync_call("w:", "inst:1", "inst:2", 15'000);
  EXPECT_EQ(c.script, Script::resync);
  ASSERT_EQ(c.keys.size(), 3u);
  EXPECT_EQ(c.keys[0], "w:leases");
  ASSERT_EQ(c.args.size(), 5u);
  EXPECT_EQ(c.args[0], "inst:1");  // dropped at once: its counts stop counting
  EXPECT_EQ(c.args[1], "inst:2");
  EXPECT_EQ(c.args[2], "15000");
  // Each slot key with its own count, whatever the map's order.
  for (std::size_t i = 1; i < c.keys.size(); ++i)
    EXPECT_EQ(c.args[i + 2], c.keys[i] == "w:c:a" ? "2" : "1") << c.keys[i];
  // The first connection has no old lease.
  EXPECT_EQ(LeaseBook{}.resync_call("w:", "", "inst:1", 1000).args,
            (std::vector<std::string>{"", "inst:1", "1000"}));
  const Call renew = renew_call("w:", "inst:2", 3000);
  EXPECT_EQ(renew.keys, (std::vector<std::string>{"w:leases"}));
  EXPECT_EQ(renew.args, (std::vector<std::string>{"inst:2", "3000"}));
  const Call rel = release_call("w:", "inst:2", {"a"});
  EXPECT_EQ(rel.keys, (std::vector<std::string>{"w:c:a"}));
  EXPECT_EQ(rel.args, (std::vector<std::string>{"inst:2"}));
}

TEST(SharedRevocations, CallsAndEntries) {
  const Revocations::Entry alice{Revocations::Kind::subject, "alice", 1'765'000'060'000};
  const Call c = revoke_call("w:", "inst", alice, 1'765'000'000'000);
  EXPECT_EQ(c.script, Script::revoke);
  EXPECT_EQ(c.keys, (std::vector<std::string>{"w:revoked", "w:revoked:log"}));
  EXPECT_EQ(c.args, (std::vector<std::string>{"s:alice", "1765000060000", "1765000000000", "inst", "10000"}));
  EXPECT_EQ(revocation_member(Revocations::Kind::token_id, "t:1"), "j:t:1");
  EXPECT_EQ(revocations_call("w:", 5).keys, c.keys);
  EXPECT_EQ(revocation_read_command("w:", "17-0"),
            (std::vector<std::string>{"XREAD", "COUNT", "1000", "STREAMS", "w:revoked:log", "17-0"}));

  std::vector<Revocations::Entry> many;
  for (int i = 0; i < 1001; ++i) many.push_back({Revocations::Kind::token_id, std::to_string(i), 7});
  const auto restore = revocation_restore_commands("w:", many);
  ASSERT_EQ(restore.size(), 2u);  // in batches of 1000
  EXPECT_EQ(restore[0].size(), 3u + 2000u);
  EXPECT_EQ((std::vector<std::string>(restore[1].begin(), restore[1].end())),
            (std::vector<std::string>{"ZADD", "w:revoked", "GT", "7", "j:1000"}));
  EXPECT_TRUE(revocation_restore_commands("w:", {}).empty());

  // Back from the set (score) or the log (field u); a value may hold ':'.
  auto e = revocation_entry("j:t:1", "1765000060000");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind, Revocations::Kind::token_id);
  EXPECT_EQ(e->value, "t:1");
  EXPECT_EQ(e->until_ms, 1'765'000'060'000);
  EXPECT_EQ(revocation_entry("s:bob", "1.765e12")->until_ms, 1'765'000'000'000);
  for (auto [m, u] : {std::pair{"x:bob", "1"}, {"s:", "1"}, {"s", "1"}, {"sbob", "1"}, {"s:bob", ""},
                      {"s:bob", "soon"}, {"s:bob", "12x"}, {"s:bob", "-5"}, {"s:bob", "nan"}, {"s:bob", "1e300"}})
    EXPECT_FALSE(revocation_entry(m, u)) << m << " " << u;
}

TEST(SharedRevocations, CoversOnlyAnEqualOrLaterEnd) {
  Revocations r;
  ASSERT_TRUE(r.add(Revocations::Kind::subject, "alice", 5000, 1000));
  EXPECT_TRUE(r.covers(Revocations::Kind::subject, "alice", 5000));
  EXPECT_TRUE(r.covers(Revocations::Kind::subject, "alice", 4000));
  EXPECT_FALSE(r.covers(Revocations::Kind::subject, "alice", 6000));  // extends it: news
  EXPECT_FALSE(r.covers(Revocations::Kind::token_id, "alice", 10));   // another kind
  EXPECT_FALSE(r.covers(Revocations::Kind::subject, "bob", 10));
}

}  // namespace
}  // namespace weir::state::redis
