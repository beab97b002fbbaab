#pragma once
// A listening socket on one worker (SO_REUSEPORT: every worker has its own on
// the same address, and the kernel spreads connections over them).

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <functional>
#include <string>

#include "core/worker.h"

namespace weir::net {

class Listener {
 public:
  using OnAccept = std::function<void(core::Worker&, boost::asio::ip::tcp::socket)>;

  // Binds address:port (port 0 = any free port); throws std::system_error.
  Listener(core::Worker& worker, const std::string& address, std::uint16_t port, OnAccept on_accept);

  ~Listener();
  std::uint16_t port() const { return port_; }
  core::Worker& worker() const { return worker_; }
  void start();   // worker thread
  void stop();    // worker thread: no more accepts

 private:
  void accept_next();
  // Out of descriptors: spend the reserve one to accept a waiting client and
  // tell it 503 instead of leaving it in the backlog. False if none waited.
  bool refuse_one_with_503();

  core::Worker& worker_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
  OnAccept on_accept_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
  int reserve_fd_ = -1;  // /dev/null, released when accept() hits EMFILE
};

}  // namespace weir::net
