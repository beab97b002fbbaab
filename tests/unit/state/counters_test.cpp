#include "state/counters.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "filters/connection_limits/connection_limits.h"
#include "support/test_support.h"

namespace weir::state {
namespace {

TEST(LocalCounters, GcraBurstThenRefillAtTheRate) {
  auto c = make_local_counters();
  // 2 per second, burst 3: three at once, the fourth waits 500 ms.
  const std::int64_t t0 = 1'000'000;
  EXPECT_EQ(c->take("k", 2, 3, t0), 0);
  EXPECT_EQ(c->take("k", 2, 3, t0), 0);
  EXPECT_EQ(c->take("k", 2, 3, t0), 0);
  EXPECT_EQ(c->take("k", 2, 3, t0), 500);
  EXPECT_EQ(c->take("k", 2, 3, t0 + 499), 1);
  EXPECT_EQ(c->take("k", 2, 3, t0 + 500), 0);  // one more after one interval
  EXPECT_EQ(c->take("k", 2, 3, t0 + 500), 500);
  // Idle for long: back to a full burst, never more.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c->take("k", 2, 3, t0 + 60'000), 0);
  EXPECT_GT(c->take("k", 2, 3, t0 + 60'000), 0);
  // Other keys are other buckets.
  EXPECT_EQ(c->take("other", 2, 3, t0), 0);
  // A refused event does not spend: waiting the announced time is enough.
  const std::int64_t wait = c->take("k", 2, 3, t0 + 60'000);
  EXPECT_EQ(c->take("k", 2, 3, t0 + 60'000 + wait), 0);
}

TEST(LocalCounters, ClockStepsBackDoNotGrantExtra) {
  auto c = make_local_counters();
  EXPECT_EQ(c->take("k", 1, 1, 10'000), 0);
  EXPECT_GT(c->take("k", 1, 1, 5'000), 0);  // earlier than the last event: still owed
  EXPECT_EQ(c->take("k", 1, 1, 11'000), 0);
}

TEST(LocalCounters, SlotsUpToTheMaxAndBack) {
  auto c = make_local_counters();
  EXPECT_TRUE(c->acquire("u", 2));
  EXPECT_TRUE(c->acquire("u", 2));
  EXPECT_FALSE(c->acquire("u", 2));
  EXPECT_EQ(c->held("u"), 2u);
  c->release("u");
  EXPECT_TRUE(c->acquire("u", 2));
  c->release("u");
  c->release("u");
  c->release("u");  // one too many: ignored
  EXPECT_EQ(c->held("u"), 0u);
  EXPECT_TRUE(c->acquire("u", 1));
}

TEST(LocalCounters, ManyThreadsNeverExceedTheMax) {
  auto c = make_local_counters();
  std::atomic<int> got{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (c->acquire("shared", 100)) ++got;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(got.load(), 100);
  EXPECT_EQ(c->held("shared"), 100u);
}

TEST(LocalCounters, AFloodOfDistinctKeysIsSwept) {
  auto c = make_local_counters();
  // 200 000 addresses, 10 new ones per ms; each bucket is full again 100 ms later.
  for (int i = 0; i < 200'000; ++i) c->take("ip|" + std::to_string(i), 10, 10, i / 10);
  EXPECT_LT(c->keys(), 16u * 8192u);  // swept: at most about two sweeps' worth per shard
  EXPECT_GT(c->keys(), 0u);
  // Slots only: the key goes with its last slot.
  auto d = make_local_counters();
  ASSERT_TRUE(d->acquire("x", 1));
  EXPECT_EQ(d->keys(), 1u);
  d->release("x");
  EXPECT_EQ(d->keys(), 0u);
}

using test::config_error;

TEST(ConnectionLimits, RulesAndConfigErrors) {
  const std::string head = "listeners: [{address: 127.0.0.1, port: 0}]\nroutes:\n  - upstreams: [echo]\n";
  const auto cfg = config::load_string(
      head + "    connection_limits: [{per: ip, connections_per_second: 5, burst: 10}, {per: global, concurrent: 100}]\n"
             "    user_limits: [{concurrent: 3}]\n",
      "t.yaml");
  ASSERT_EQ(cfg.routes[0].filters.size(), 2u);
  const auto* a = dynamic_cast<const filters::ConnectionLimitsFilter*>(cfg.routes[0].filters[0].get());
  const auto* b = dynamic_cast<const filters::ConnectionLimitsFilter*>(cfg.routes[0].filters[1].get());
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->key, "connection_limits");
  EXPECT_EQ(b->key, "user_limits");
  ASSERT_EQ(a->rules().size(), 2u);
  EXPECT_EQ(a->rules()[0].rate, 5);
  EXPECT_EQ(a->rules()[0].burst, 10);
  EXPECT_EQ(a->rules()[1].concurrent, 100u);
  EXPECT_EQ(b->rules()[0].per, filters::ConnectionLimitsFilter::Per::user);
  EXPECT_NE(config_error(head + "    connection_limits: [{per: user, concurrent: 3}]\n").find("t.yaml:4:"), std::string::npos);
  EXPECT_NE(config_error(head + "    connection_limits: [{per: ip}]\n").find("needs connections_per_second or concurrent"),
            std::string::npos);
  EXPECT_NE(config_error(head + "    connection_limits: [{per: ip, burst: 3, concurrent: 1}]\n").find("needs connections_per_second"),
            std::string::npos);
  EXPECT_NE(config_error(head + "    user_limits: [{per: ip, concurrent: 1}]\n").find("per"), std::string::npos);
  EXPECT_NE(config_error(head + "    user_limits: [{concurrent: 0}]\n"), "");
}

}  // namespace
}  // namespace weir::state
