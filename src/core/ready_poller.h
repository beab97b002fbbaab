#pragma once
// The worker's event loop. Every socket on the data path (listeners, both
// sockets of every session) is registered once, edge-triggered for reading
// and writing, in this epoll set; a wait is a flag on the socket's owner, so
// no wait costs an epoll_ctl (Asio re-arms each readiness wait with one).
// Asio still runs the rest (cross-thread posts, the echo upstream, DNS): its
// own epoll descriptor sits in this set, and io_context::poll() runs when it
// is ready. Asio only signals that descriptor for its own sockets and timers
// (a post from another thread interrupts a thread blocked inside Asio, and
// none is), so posts from other threads come with notify(), and while a
// foreign completion is expected (DNS) the loop polls Asio every few ms.
// Deadlines come from the worker's timer wheel through one timerfd, armed
// only when the earliest deadline moves earlier; deferred work from defer().
// Worker thread only, except where said.

#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <functional>
#include <vector>

#include "core/timer_wheel.h"

namespace weir::core {

class ReadyTarget {
 public:
  // events: EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP/EPOLLRDHUP bits; tag: 0 or 1.
  virtual void on_ready(unsigned tag, std::uint32_t events) = 0;

 protected:
  ~ReadyTarget() = default;
};

class ReadyPoller {
 public:
  // Throws std::system_error when the epoll set cannot be made.
  ReadyPoller(boost::asio::io_context& io, TimerWheel& wheel);
  ~ReadyPoller();
  ReadyPoller(const ReadyPoller&) = delete;
  ReadyPoller& operator=(const ReadyPoller&) = delete;

  // Registers fd; events go to target->on_ready(tag, ...) until the fd is
  // closed (closing a descriptor takes it out of the set). The target must
  // outlive the current handler after that: events of a batch already taken
  // may still name it (defer the release).
  // level: level-triggered for reading only (a listening socket, taken one
  // connection per event like nginx, so no accept ends in EAGAIN).
  bool add(int fd, ReadyTarget* target, unsigned tag, bool level = false);

  // Takes fd out of the set (until add() again).
  void remove(int fd);

  // Runs f after the events of the current batch (no syscall, no Asio post).
  void defer(std::function<void()> f) { deferred_.push_back(std::move(f)); }

  // From any thread, after posting to the io_context: run it soon.
  void notify();
  // Worker thread, outside Asio handlers: an Asio operation was started
  // (it may complete at once, and Asio queues that without waking anyone):
  // run io_context::poll() at the end of this round.
  void poke() { asio_ready_ = true; }
  // Worker thread: a completion will be posted from another thread (Asio's
  // resolver thread) until the matching foreign_end().
  void foreign_begin() { ++foreign_; }
  void foreign_end() { --foreign_; }

  // A deadline was scheduled on the wheel: wake up by then.
  void wake_by(std::int64_t wake_ms) {
    if (wake_ms_ < 0 || wake_ms < wake_ms_) wake_ms_ = wake_ms;
  }

  // False when Asio's descriptor was not found (no /proc): Asio is then
  // polled every few ms instead of when it is ready.
  bool watches_asio() const { return asio_fd_ >= 0; }

  // Runs until stop(). on_error: a handler threw (the loop goes on).
  void run(const std::function<void(const char*)>& on_error);
  void stop() { stopped_ = true; }  // worker thread (post it from others)

 private:
  void run_timers();
  void arm_timer();  // timer_fd_ to expire at wake_ms_

  boost::asio::io_context& io_;
  TimerWheel& wheel_;
  int epfd_ = -1;
  int asio_fd_ = -1;           // Asio's own epoll set (not owned); -1: not found, poll Asio on a timer
  int event_fd_ = -1;          // notify()
  int timer_fd_ = -1;          // expires at armed_ms_ (CLOCK_MONOTONIC ms)
  std::int64_t armed_ms_ = -1; // -1: disarmed (or expired)
  int foreign_ = 0;
  std::int64_t wake_ms_ = -1;  // when the wheel next needs advancing; -1: empty
  bool stopped_ = false;
  bool asio_ready_ = true;     // run io_.poll() this round (posted before the loop started, too)
  std::vector<std::function<void()>> deferred_, running_;
};

}  // namespace weir::core
