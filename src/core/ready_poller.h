#pragma once
// Readiness for relayed sockets without a syscall per wait. Asio re-arms a
// readiness wait with epoll_ctl(MOD) every time; a relay waits once per
// message and direction, so that was a third of its syscalls. Here each
// relayed socket is registered once, edge-triggered for reading and writing,
// in a worker-private epoll set; Asio watches only that set's descriptor, so
// the cost of going through Asio is paid once per batch of ready sockets.
// Worker thread only.

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <cstdint>

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
  explicit ReadyPoller(boost::asio::io_context& io);
  ~ReadyPoller();
  ReadyPoller(const ReadyPoller&) = delete;
  ReadyPoller& operator=(const ReadyPoller&) = delete;

  // Registers fd; events go to target->on_ready(tag, ...) until remove(fd).
  // The target must outlive the current handler after remove() (events of a
  // batch already taken may still name it).
  bool add(int fd, ReadyTarget* target, unsigned tag);
  void remove(int fd);

 private:
  void wait();

  int epfd_ = -1;
  boost::asio::posix::stream_descriptor desc_;
};

}  // namespace weir::core
