#pragma once
// A listening socket on one worker (SO_REUSEPORT: every worker has its own on
// the same address, and the kernel spreads connections over them). It sits in
// the worker's ReadyPoller (level-triggered, one accept per event) and accepts
// with accept4(): the peer address comes
// with the descriptor, non-blocking and close-on-exec, and TCP_NODELAY is
// inherited from the listening socket, so a new connection costs no extra
// syscalls before its first read.

#include <sys/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/ready_poller.h"
#include "core/worker.h"

namespace weir::net {

class Listener final : public core::ReadyTarget {
 public:
  // fd: the accepted connection (owned by the callee from now on).
  using OnAccept = std::function<void(core::Worker&, int fd, const sockaddr* peer)>;

  // Binds address:port (port 0 = any free port); throws std::system_error.
  Listener(core::Worker& worker, const std::string& address, std::uint16_t port, OnAccept on_accept);

  ~Listener();
  std::uint16_t port() const { return port_; }
  core::Worker& worker() const { return worker_; }
  void start();   // worker thread
  void stop();    // worker thread: no more accepts

  void on_ready(unsigned tag, std::uint32_t events) override;

 private:
  void accept_one();
  void back_off();
  // Out of descriptors: spend the reserve one to accept a waiting client and
  // tell it 503 instead of leaving it in the backlog. False if none waited.
  bool refuse_one_with_503();

  struct Backoff;
  core::Worker& worker_;
  int fd_ = -1;
  std::unique_ptr<Backoff> backoff_;
  OnAccept on_accept_;
  std::uint16_t port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
  bool backing_off_ = false;
  int reserve_fd_ = -1;  // /dev/null, released when accept() hits EMFILE
};

}  // namespace weir::net
