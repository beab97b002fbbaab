#include "proxy/leg.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace weir::proxy {

namespace {
constexpr std::size_t kHeadChunk = 1024;
}  // namespace

net::IoResult Leg::read_head(std::string& in, std::size_t max) {
  const std::size_t old = in.size();
  const std::size_t want = std::min(std::max(kHeadChunk, old), max - std::min(max, old));
  in.resize(old + want);
  io.begin_io();  // TLS may write too
  const auto r = read(in.data() + old, want);
  in.resize(old + r.n);
  return r;
}

net::IoResult Leg::read(void* buf, std::size_t n) {
  io.rx = false;
  const auto r = net::read_some(fd, ssl, buf, n);
  if (r.would_block()) io.read_wants_write = r.status == net::Io::want_write;
  return r;
}

net::IoResult Leg::write(const void* a, std::size_t an, const void* b, std::size_t bn) {
  io.tx = false;
  const auto r = net::write_some(fd, ssl, a, an, b, bn);
  if (r.would_block()) io.write_wants_read = r.status == net::Io::want_read;
  return r;
}

bool Leg::drained() const { return ssl == nullptr || net::tls_drained(ssl, &tls_drained); }

void Leg::cut() {
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

void Leg::close() {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
  io.reset();
}

}  // namespace weir::proxy
