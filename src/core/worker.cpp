#include "core/worker.h"

#include <boost/asio/post.hpp>

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
