#include "core/timer_wheel.h"

#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>
#include <vector>

namespace weir::core {
namespace {

struct Probe : TimerTarget {
  std::vector<std::int64_t> fired;  // now_ms of each firing
  std::function<void(std::int64_t)> then;
  void on_due(std::int64_t now) override {
    fired.push_back(now);
    if (then) then(now);
  }
};

constexpr std::int64_t T = TimerWheel::kTickMs;

TEST(TimerWheel, FiresOnceItsTickHasEndedNotBefore) {
  TimerWheel w(1000);
  Probe p;
  w.schedule(&p, 1100);
  EXPECT_EQ(w.size(), 1u);
  EXPECT_TRUE(p.scheduled());
  w.advance(1099);
  EXPECT_TRUE(p.fired.empty());
  w.advance(1100);  // inside its tick: not over yet
  EXPECT_TRUE(p.fired.empty()) << "tick " << 1100 / T;
  const std::int64_t end = (1100 / T + 1) * T;
  EXPECT_EQ(w.next_wakeup_ms(), end);
  w.advance(end);
  ASSERT_EQ(p.fired.size(), 1u);
  EXPECT_EQ(p.fired[0], end);
  EXPECT_LE(end - 1100, T);
  EXPECT_FALSE(p.scheduled());
  EXPECT_EQ(w.size(), 0u);
  EXPECT_EQ(w.next_wakeup_ms(), -1);
  w.advance(end + 10 * T);
  EXPECT_EQ(p.fired.size(), 1u);
}

TEST(TimerWheel, DeadlinesBeyondOneTurnWaitForTheirTurn) {
  TimerWheel w(0);
  Probe p;
  const std::int64_t turn = T * static_cast<std::int64_t>(TimerWheel::kSlots);
  w.schedule(&p, 3 * turn + 40);
  for (std::int64_t now = 0; now < 3 * turn + 40; now += 5) w.advance(now);
  EXPECT_TRUE(p.fired.empty());
  w.advance(3 * turn + 40 + T);
  ASSERT_EQ(p.fired.size(), 1u);
}

TEST(TimerWheel, RescheduleMovesAndCancelRemoves) {
  TimerWheel w(0);
  Probe a, b;
  w.schedule(&a, 100);
  w.schedule(&a, 500);  // moved, not added twice
  w.schedule(&b, 200);
  EXPECT_EQ(w.size(), 2u);
  w.cancel(&b);
  w.cancel(&b);  // harmless
  EXPECT_EQ(w.size(), 1u);
  w.advance(400);
  EXPECT_TRUE(a.fired.empty());
  EXPECT_TRUE(b.fired.empty());
  w.advance(600);
  EXPECT_EQ(a.fired.size(), 1u);
  EXPECT_TRUE(b.fired.empty());
}

TEST(TimerWheel, PastDeadlineFiresAtTheNextTick) {
  TimerWheel w(1000);
  Probe p;
  w.advance(2000);
  w.schedule(&p, 10);  // long past
  w.advance(2000 + T);
  EXPECT_EQ(p.fired.size(), 1u);
}

TEST(TimerWheel, LongStallFiresEverythingOnce) {
  TimerWheel w(0);
  std::vector<Probe> ps(300);
  for (std::size_t i = 0; i < ps.size(); ++i) w.schedule(&ps[i], static_cast<std::int64_t>(i) * 97);
  w.advance(1'000'000);
  for (auto& p : ps) EXPECT_EQ(p.fired.size(), 1u);
  EXPECT_EQ(w.size(), 0u);
}

TEST(TimerWheel, CallbacksMayRescheduleThemselvesAndCancelOthersInTheSameSlot) {
  TimerWheel w(0);
  Probe a, b, c;
  // Same tick for all three.
  w.schedule(&a, 16);
  w.schedule(&b, 17);
  w.schedule(&c, 18);
  a.then = [&](std::int64_t now) {
    w.cancel(&b);
    w.schedule(&a, now + 3);  // into a later tick
  };
  w.advance(3 * T);
  EXPECT_EQ(a.fired.size(), 1u);
  EXPECT_TRUE(b.fired.empty());
  EXPECT_EQ(c.fired.size(), 1u);
  EXPECT_EQ(w.size(), 1u);
  w.advance(5 * T);
  EXPECT_EQ(a.fired.size(), 2u);
}

TEST(TimerWheel, AThrowingEntryLeavesTheOthersScheduled) {
  TimerWheel w(0);
  Probe a, b, c;
  w.schedule(&a, 16);
  w.schedule(&b, 17);  // same tick, after a
  w.schedule(&c, 900);
  a.then = [](std::int64_t) { throw std::runtime_error("boom"); };
  EXPECT_THROW(w.advance(3 * T), std::runtime_error);
  EXPECT_EQ(a.fired.size(), 1u);
  EXPECT_TRUE(b.scheduled());
  EXPECT_EQ(w.size(), 2u);
  EXPECT_GE(w.next_wakeup_ms(), 0);
  w.advance(3 * T);
  EXPECT_EQ(b.fired.size(), 1u);
  w.advance(1000);
  EXPECT_EQ(c.fired.size(), 1u);
}

TEST(TimerWheel, NextWakeupPointsAtTheEarliestNonEmptyTick) {
  TimerWheel w(0);
  Probe a, b;
  w.schedule(&b, 900);
  w.schedule(&a, 300);
  EXPECT_EQ(w.next_wakeup_ms(), (300 / T + 1) * T);
  w.advance(w.next_wakeup_ms());
  EXPECT_EQ(a.fired.size(), 1u);
  EXPECT_EQ(w.next_wakeup_ms(), (900 / T + 1) * T);
}

}  // namespace
}  // namespace weir::core
