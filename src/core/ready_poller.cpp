#include "core/ready_poller.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <system_error>

namespace weir::core {

ReadyPoller::ReadyPoller(boost::asio::io_context& io) : desc_(io) {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  desc_.assign(::dup(epfd_));  // Asio owns (and closes) its copy
  wait();
}

ReadyPoller::~ReadyPoller() {
  boost::system::error_code ignored;
  desc_.close(ignored);
  ::close(epfd_);
}

bool ReadyPoller::add(int fd, ReadyTarget* target, unsigned tag) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = reinterpret_cast<std::uintptr_t>(target) | (tag & 1u);
  return ::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

void ReadyPoller::remove(int fd) {
  epoll_event ev{};
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, &ev);
}

void ReadyPoller::wait() {
  desc_.async_wait(boost::asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec) return;
    epoll_event evs[256];
    const int n = ::epoll_wait(epfd_, evs, 256, 0);
    for (int i = 0; i < n; ++i) {
      const std::uint64_t u = evs[i].data.u64;
      auto* target = reinterpret_cast<ReadyTarget*>(static_cast<std::uintptr_t>(u & ~std::uint64_t{1}));
      target->on_ready(static_cast<unsigned>(u & 1u), evs[i].events);
    }
    wait();
  });
}

}  // namespace weir::core
