// The worker loop's deadlines: the wheel wakes an otherwise idle loop (which
// blocks in epoll_wait without a timeout) through its timer descriptor.

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "config/config.h"
#include "core/clock.h"
#include "core/worker.h"

namespace weir::core {
namespace {

using Clock = std::chrono::steady_clock;

struct Probe : TimerTarget {
  std::mutex* mu = nullptr;
  std::vector<std::pair<const Probe*, Clock::time_point>>* log = nullptr;
  void on_due(std::int64_t) override {
    std::lock_guard<std::mutex> lock(*mu);
    log->emplace_back(this, Clock::now());
  }
};

class WorkerLoop : public ::testing::Test {
 protected:
  void SetUp() override {
    worker_ = std::make_unique<Worker>(0, 64 * 1024);
    for (Probe* p : {&a_, &b_, &c_}) {
      p->mu = &mu_;
      p->log = &log_;
    }
    worker_->start();
  }
  void TearDown() override {
    // The probes must leave the wheel on the worker thread before they go.
    std::promise<void> done;
    worker_->post([&] {
      for (Probe* p : {&a_, &b_, &c_}) worker_->cancel_timer(p);
      done.set_value();
    });
    done.get_future().wait();
    worker_->stop();
    worker_->join();
  }
  // Waits up to `limit` for n firings; returns what fired.
  std::vector<std::pair<const Probe*, Clock::time_point>> wait_for(std::size_t n, std::chrono::milliseconds limit) {
    const auto end = Clock::now() + limit;
    while (Clock::now() < end) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (log_.size() >= n) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::lock_guard<std::mutex> lock(mu_);
    return log_;
  }

  std::unique_ptr<Worker> worker_;
  Probe a_, b_, c_;
  std::mutex mu_;
  std::vector<std::pair<const Probe*, Clock::time_point>> log_;
};

TEST_F(WorkerLoop, AnIdleLoopWakesForItsDeadlineNotBefore) {
  const auto t0 = Clock::now();
  worker_->post([&] { worker_->schedule_timer(&a_, coarse_now_ms() + 100); });
  const auto fired = wait_for(1, std::chrono::seconds(3));
  ASSERT_EQ(fired.size(), 1u) << "nothing else happens on the worker: only the timer can wake it";
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(fired[0].second - t0).count();
  EXPECT_GE(ms, 95);  // the coarse clock may lag the steady one by a few ms at scheduling
  EXPECT_LT(ms, 1000);
}

TEST_F(WorkerLoop, AnEarlierDeadlineScheduledLaterStillComesFirst) {
  const auto t0 = Clock::now();
  // a far, then b near: the timer armed for a must be brought forward for b.
  worker_->post([&] { worker_->schedule_timer(&a_, coarse_now_ms() + 600); });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // the loop arms for a and sleeps
  worker_->post([&] { worker_->schedule_timer(&b_, coarse_now_ms() + 100); });
  const auto fired = wait_for(2, std::chrono::seconds(3));
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0].first, &b_);
  EXPECT_EQ(fired[1].first, &a_);
  const auto b_ms = std::chrono::duration_cast<std::chrono::milliseconds>(fired[0].second - t0).count();
  EXPECT_LT(b_ms, 450) << "b waited for a's deadline";
  EXPECT_GE(std::chrono::duration_cast<std::chrono::milliseconds>(fired[1].second - t0).count(), 595);
}

TEST_F(WorkerLoop, ACancelledEarliestDeadlineDoesNotStrandTheNext) {
  // c is armed for, then cancelled: its (now empty) wake-up must lead to b's.
  worker_->post([&] { worker_->schedule_timer(&c_, coarse_now_ms() + 50); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  worker_->post([&] {
    worker_->cancel_timer(&c_);
    worker_->schedule_timer(&b_, coarse_now_ms() + 200);
  });
  const auto fired = wait_for(1, std::chrono::seconds(3));
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0].first, &b_);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(log_.size(), 1u) << "a cancelled entry fired";
}

}  // namespace
}  // namespace weir::core
