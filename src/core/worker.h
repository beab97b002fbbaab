#pragma once
// A worker: one thread, one io_context, its own listener sockets and buffer
// pool. Every socket of a session lives here for its whole life; other threads
// only post() to it (design: threads). core/ is a leaf: what a worker serves
// (config generation, routes, TLS) belongs to the layers above
// (proxy::WorkerGateway), which reach their sessions through Closable.

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <functional>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/buffer_pool.h"
#include "core/ready_poller.h"
#include "core/timer_wheel.h"
#include "observability/stats.h"

namespace weir::core {

// What the admin API shows of a live session (docs/admin.md).
struct SessionInfo {
  std::uint64_t id = 0;
  std::string client, route, upstream, user, token_id, trace_id;
  const char* state = "";
  std::int64_t age_ms = 0;
  std::uint64_t bytes_in = 0, bytes_out = 0;        // in: client to upstream
  std::uint64_t messages_in = 0, messages_out = 0;
  const void* member = nullptr;  // its upstream group member's state (upstream::MemberState), if chosen
  bool pinned = false;           // sticky, and its route does not let rebalancing move it
};

// Something a worker can ask to wind down (a session); linked into the
// worker's list so shutdown can reach every live one.
class Closable {
 public:
  virtual void shutdown(std::uint16_t code, std::string_view reason) = 0;
  // A new config generation reached this worker (worker thread).
  virtual void on_reload() {}
  // The admin API's view (worker thread); false: not a client session.
  virtual bool describe(SessionInfo&) const { return false; }
  virtual std::uint64_t session_id() const { return 0; }

 protected:
  ~Closable() = default;

 private:
  friend class Worker;
  Closable* prev_ = nullptr;
  Closable* next_ = nullptr;
};

class Worker {
 public:
  // buffer_bytes: the size of the relay buffers the pool caches.
  Worker(unsigned index, std::size_t buffer_bytes);
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  unsigned index() const { return index_; }
  boost::asio::io_context& io() { return io_; }
  BufferPool& buffers() { return buffers_; }
  obs::WorkerStats& stats() { return stats_; }
  // This worker's cells in the metrics registry (obs::Registry::global()):
  // only this thread writes them.
  obs::Cell* cells() const { return cells_; }

  // Runs the loop (ReadyPoller::run) on a new thread until stop().
  void start();
  void stop();
  void join();

  // Session registry (worker thread only).
  void attach(Closable* c);
  void detach(Closable* c);
  // Asks every live session to close (worker thread only).
  void shutdown_all(std::uint16_t code, std::string_view reason);
  std::size_t live() const { return live_.load(std::memory_order_relaxed); }
  // Calls on_reload() on every live session (worker thread only).
  void notify_reload();
  // Calls f on every live session (worker thread only); f must not end one.
  template <class F>
  void for_each(F&& f) {
    for (Closable* c = head_; c != nullptr; c = c->next_) f(*c);
  }

  ReadyPoller& poller() { return *poller_; }

  // Session timers: coarse deadlines (ms of coarse_now_ms()) on the worker's
  // wheel, which the loop advances (worker thread only).
  void schedule_timer(TimerTarget* t, std::int64_t due_ms) {
    wheel_.schedule(t, due_ms);
    poller_->wake_by((due_ms / TimerWheel::kTickMs + 1) * TimerWheel::kTickMs);
  }
  void cancel_timer(TimerTarget* t) { wheel_.cancel(t); }
  // From any thread: runs f on the worker (use this rather than posting to
  // io() directly, which would not wake the loop).
  template <class F>
  void post(F f) {
    boost::asio::post(io_, std::move(f));
    poller_->notify();
  }
  // Worker thread, outside Asio handlers, after starting an Asio operation:
  // see ReadyPoller::poke().
  void poke_asio() { poller_->poke(); }
  // Runs f after the current batch of events (worker thread only).
  void defer(std::function<void()> f) { poller_->defer(std::move(f)); }

 private:
  unsigned index_;
  BufferPool buffers_;
  obs::WorkerStats stats_;
  obs::Cell* cells_;
  std::thread thread_;
  Closable* head_ = nullptr;
  std::atomic<std::size_t> live_{0};
  // Before io_, so it outlives it: sessions destroyed with io_'s handlers
  // leave the wheel and return buffers to buffers_.
  TimerWheel wheel_;
  boost::asio::io_context io_;
  // After io_, so it is destroyed before it.
  std::unique_ptr<ReadyPoller> poller_;
};

}  // namespace weir::core
