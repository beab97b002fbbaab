#include "core/worker.h"

#include <boost/asio/post.hpp>

#include "core/clock.h"

#include "observability/log.h"

namespace weir::core {

Worker::Worker(unsigned index, std::size_t buffer_bytes)
    : index_(index),
      buffers_(buffer_bytes),
      cells_(obs::Registry::global().slot(index)),
      wheel_(coarse_now_ms()),
      io_(1),
      poller_(std::make_unique<ReadyPoller>(io_, wheel_)) {
  if (!poller_->watches_asio()) {
    log::Line(log::Level::warn, "worker_loop_fallback")
        .num("worker", index_)
        .str("detail", "Asio's epoll descriptor not found (is /proc mounted?): polling Asio every 5 ms");
  }
}

void Worker::start() {
  thread_ = std::thread([this] {
    poller_->run([this](const char* what) {
      // A handler threw: log it and keep the loop (and its other sessions) alive.
      log::Line(log::Level::error, "worker_exception").num("worker", index_).str("what", what);
    });
  });
}

// From any thread: the loop stops after the current round.
void Worker::stop() {
  post([this] { poller_->stop(); });
}

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

namespace weir::core {

void Worker::notify_reload() {
  for (Closable* c = head_; c;) {
    Closable* next = c->next_;
    c->on_reload();
    c = next;
  }
}

}  // namespace weir::core
