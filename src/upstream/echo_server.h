#pragma once
// The built-in `echo` upstream: a strict RFC 6455 echo server on 127.0.0.1,
// one acceptor per worker. Routes name it as `echo`; it also serves as the
// benchmark backend (weir-bench echo), so it echoes at relay speed: frames are
// unmasked and compacted in place and written back with one write per read.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "core/worker.h"

namespace weir::upstream {

class EchoServer {
 public:
  // Binds address:port (0 = free port) with SO_REUSEPORT; throws on failure.
  EchoServer(core::Worker& worker, const std::string& address, std::uint16_t port);
  ~EchoServer();
  std::uint16_t port() const;
  core::Worker& worker() const;
  void start();
  void stop();
  // Answers each upgrade this much later (a slow backend, for benchmarks:
  // weir-bench echo --handshake-delay-ms). Before start(); default 0.
  void set_handshake_delay(std::chrono::milliseconds d);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace weir::upstream
