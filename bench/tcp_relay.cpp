// weir-bench relay: the floor for any user-space proxy (see bench/README.md, "The floor").
//
// A byte tunnel and nothing else: no HTTP, no WebSocket, no timers, no logs. It accepts a TCP
// connection, opens one to the upstream, and moves bytes both ways with recv and send on one
// epoll loop (edge-triggered, one 64 KiB buffer per direction, allocated with the connection).
// The WebSocket upgrade passes through it as bytes, so weir-bench runs through it unchanged.
// Whatever CPU this costs per relayed message is kernel TCP work (plus the few syscalls every
// event-driven proxy makes); bench/compare reports it as the peer "floor".

#include "tcp_relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace weir::bench {
namespace {

constexpr std::size_t kBuf = 64 * 1024;

struct Conn;

// One socket of a relayed pair; the epoll data points here.
struct Side {
  Conn* conn;
  int fd = -1;
  bool eof = false;  // this socket's peer sent FIN (or the socket failed)
  // Bytes read from this socket not yet written to the other one.
  std::size_t off = 0, len = 0;
  char buf[kBuf];
};

struct Conn {
  Side a, b;  // a: client, b: upstream
  bool closed = false;
  Conn() { a.conn = b.conn = this; }
};

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

Side& other(Side& s) { return &s == &s.conn->a ? s.conn->b : s.conn->a; }

// Closing takes the descriptors out of the epoll set; the Conn itself goes after the batch,
// which may still hold an event for its other side.
void close_conn(Conn* c, std::vector<Conn*>& dead) {
  ::close(c->a.fd);
  ::close(c->b.fd);
  c->closed = true;
  dead.push_back(c);
}

// Writes what `from` holds to its partner. false: the partner failed.
bool flush(Side& from) {
  Side& to = other(from);
  while (from.len > 0) {
    const ssize_t n = ::send(to.fd, from.buf + from.off, from.len, MSG_NOSIGNAL);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    from.off += static_cast<std::size_t>(n);
    from.len -= static_cast<std::size_t>(n);
  }
  from.off = 0;
  if (from.eof) ::shutdown(to.fd, SHUT_WR);
  return true;
}

// Reads from `s` and forwards to its partner until the socket is drained or the partner is
// full. false: the connection is over.
bool pump(Side& s) {
  while (!s.eof && s.len == 0) {
    const ssize_t n = ::recv(s.fd, s.buf, kBuf, 0);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n == 0) s.eof = true;
    s.len = static_cast<std::size_t>(n);
    if (!flush(s)) return false;
    if (n > 0 && static_cast<std::size_t>(n) < kBuf && s.len == 0) return true;  // drained
  }
  return true;
}

}  // namespace

int run_tcp_relay(const std::string& address, std::uint16_t port, const std::string& to_host,
                  std::uint16_t to_port) {
  sockaddr_in up{};
  up.sin_family = AF_INET;
  up.sin_port = htons(to_port);
  if (::inet_pton(AF_INET, to_host.c_str(), &up.sin_addr) != 1)
    throw std::runtime_error("relay: upstream must be an IPv4 address: " + to_host);
  sockaddr_in me{};
  me.sin_family = AF_INET;
  me.sin_port = htons(port);
  if (::inet_pton(AF_INET, address.c_str(), &me.sin_addr) != 1)
    throw std::runtime_error("relay: bad address " + address);

  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // inherited by accepted sockets
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&me), sizeof me) != 0 || ::listen(lfd, 4096) != 0)
    throw std::runtime_error(std::string("relay: listen: ") + std::strerror(errno));
  socklen_t sl = sizeof me;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&me), &sl);
  std::printf("{\"event\":\"listening\",\"address\":\"%s\",\"port\":%u}\n", address.c_str(), ntohs(me.sin_port));
  std::fflush(stdout);

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.ptr = nullptr;  // the listener
  ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

  epoll_event evs[256];
  std::vector<Conn*> dead;
  while (!g_stop) {
    const int n = ::epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; ++i) {
      if (evs[i].data.ptr == nullptr) {
        const int cfd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) continue;
        const int ufd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ::setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (ufd < 0 || (::connect(ufd, reinterpret_cast<sockaddr*>(&up), sizeof up) != 0 && errno != EINPROGRESS)) {
          ::close(cfd);
          if (ufd >= 0) ::close(ufd);
          continue;
        }
        auto* c = new Conn;
        c->a.fd = cfd;
        c->b.fd = ufd;
        for (Side* s : {&c->a, &c->b}) {
          epoll_event ev{};
          ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
          ev.data.ptr = s;
          ::epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
        }
        continue;
      }
      Side& s = *static_cast<Side*>(evs[i].data.ptr);
      if (s.conn->closed) continue;
      Side& o = other(s);
      const std::uint32_t e = evs[i].events;
      bool ok = !(e & EPOLLERR);
      // Writable: what the partner read and could not write may go out now, and the partner,
      // no longer held back, is read again. Readable: relay what came in.
      if (ok && o.len > 0) ok = flush(o) && (o.len > 0 || pump(o));
      if (ok && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))) ok = pump(s);
      if (ok && s.eof && o.eof && s.len == 0 && o.len == 0) ok = false;  // both halves done
      if (!ok) close_conn(s.conn, dead);
    }
    for (Conn* c : dead) delete c;
    dead.clear();
  }
  ::close(ep);
  ::close(lfd);
  return 0;
}

}  // namespace weir::bench
