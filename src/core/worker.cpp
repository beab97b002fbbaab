#include "core/worker.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/clock.h"

#include "observability/log.h"

namespace weir::core {

namespace {
// One pool per worker, sized for the largest buffer any route asks for.
std::size_t pool_buffer_size(const config::Config& cfg) {
  std::size_t size = 4096;
  for (const auto& r : cfg.routes) size = std::max<std::size_t>(size, r.limits.buffer_bytes);
  return size;
}
}  // namespace

struct Worker::WheelDriver {
  explicit WheelDriver(boost::asio::io_context& io) : timer(io) {}
  boost::asio::steady_timer timer;
  std::int64_t armed_ms = -1;  // wheel time the pending wait ends at; -1: none
};

Worker::Worker(unsigned index, std::shared_ptr<const config::Config> cfg,
               std::shared_ptr<const Chains> chains)
    : index_(index),
      config_(std::move(cfg)),
      buffers_(pool_buffer_size(*config_)),
      chains_(chains ? std::move(chains)
                     : std::make_shared<const Chains>(filters::build_chains(*config_))),
      picker_(config_->routes.size()),
      wheel_(coarse_now_ms()),
      io_(1),
      poller_(std::make_unique<ReadyPoller>(io_)),
      wheel_driver_(std::make_unique<WheelDriver>(io_)) {}

Worker::~Worker() = default;

// The Asio timer is re-programmed only when a deadline comes before the
// pending wake-up; a wake-up with nothing due costs one slot scan.
void Worker::schedule_timer(TimerTarget* t, std::int64_t due_ms) {
  wheel_.schedule(t, due_ms);
  const std::int64_t wake = (due_ms / TimerWheel::kTickMs + 1) * TimerWheel::kTickMs;
  const std::int64_t armed = wheel_driver_->armed_ms;
  if (armed < 0 || wake < armed) arm_wheel(wake);
}

void Worker::arm_wheel(std::int64_t wake) {
  auto& d = *wheel_driver_;
  d.armed_ms = wake;
  // The coarse clock lags the steady one by up to a jiffy, so waiting
  // (wake - coarse now) ends at or after wake. Re-arming cancels the pending
  // wait (its handler sees operation_aborted).
  d.timer.expires_after(std::chrono::milliseconds(std::max<std::int64_t>(wake - coarse_now_ms(), 0)));
  d.timer.async_wait([this, wake](boost::system::error_code ec) {
    auto& d = *wheel_driver_;
    if (ec || d.armed_ms != wake) return;
    d.armed_ms = -1;
    wheel_.advance(std::max(coarse_now_ms(), wake));
    const std::int64_t next = wheel_.next_wakeup_ms();
    if (next >= 0 && (d.armed_ms < 0 || next < d.armed_ms)) arm_wheel(next);
  });
}

void Worker::start() {
  thread_ = std::thread([this] {
    auto guard = boost::asio::make_work_guard(io_);
    for (;;) {
      try {
        io_.run();
        break;
      } catch (const std::exception& e) {
        // A handler threw: log it and keep the loop (and its other sessions) alive.
        log::Line(log::Level::error, "worker_exception").num("worker", index_).str("what", e.what());
      }
    }
  });
}

void Worker::stop() { io_.stop(); }

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::attach(Closable* c) {
  c->next_ = head_;
  c->prev_ = nullptr;
  if (head_) head_->prev_ = c;
  head_ = c;
  live_.fetch_add(1, std::memory_order_relaxed);
}

void Worker::detach(Closable* c) {
  if (c->prev_) c->prev_->next_ = c->next_;
  else head_ = c->next_;
  if (c->next_) c->next_->prev_ = c->prev_;
  c->prev_ = c->next_ = nullptr;
  live_.fetch_sub(1, std::memory_order_relaxed);
}

void Worker::shutdown_all(std::uint16_t code, std::string_view reason) {
  // shutdown() may detach the session it is called on; take the next first.
  for (Closable* c = head_; c;) {
    Closable* next = c->next_;
    c->shutdown(code, reason);
    c = next;
  }
}

}  // namespace weir::core
