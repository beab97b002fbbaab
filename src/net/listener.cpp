#include "net/listener.h"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "observability/log.h"

namespace weir::net {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }
}  // namespace

struct Listener::Backoff {
  explicit Backoff(asio::io_context& io) : timer(io) {}
  asio::steady_timer timer;
};

Listener::Listener(core::Worker& worker, const std::string& address, std::uint16_t port,
                   OnAccept on_accept)
    : worker_(worker), backoff_(std::make_unique<Backoff>(worker.io())), on_accept_(std::move(on_accept)) {
  const asio::ip::tcp::endpoint ep(asio::ip::make_address(address), port);
  fd_ = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) fail("socket");
  const int one = 1;
  if (::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      // Accepted sockets inherit it (Linux): one setsockopt per listener, not per connection.
      ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    const int e = errno;
    ::close(fd_);
    errno = e;
    fail("setsockopt");
  }
  if (::bind(fd_, ep.data(), static_cast<socklen_t>(ep.size())) != 0 || ::listen(fd_, SOMAXCONN) != 0) {
    const int e = errno;
    ::close(fd_);
    errno = e;
    fail("bind");
  }
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len);
  port_ = ntohs(local.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

Listener::~Listener() {
  if (fd_ >= 0) ::close(fd_);
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

bool Listener::refuse_one_with_503() {
  if (reserve_fd_ < 0) return false;
  ::close(reserve_fd_);
  reserve_fd_ = -1;
  const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0) {
    static constexpr char kResponse[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 25\r\n"
        "Connection: close\r\n\r\nout of file descriptors.\n";
    [[maybe_unused]] auto n = ::send(fd, kResponse, sizeof kResponse - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
    // Counted with the refusals of the handshake (docs/metrics.md), under no route.
    static const obs::CounterId refused = obs::Registry::global().counter(
        "weir_handshakes_failed_total", "Handshakes refused, by HTTP status and reason",
        {{"route", ""}, {"status", "503"}, {"reason", "out_of_fds"}});
    worker_.cells()[refused.at].add();
    log::Line(log::Level::warn, "handshake.reject")
        .num("worker", worker_.index())
        .num("status", 503)
        .str("reason", "out of file descriptors");
  }
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0;
}

void Listener::start() {
  if (started_ || stopped_) return;
  started_ = true;
  // Level-triggered: one accept per event, and the loop reports the socket
  // again while connections wait, between other sockets' events.
  if (!worker_.poller().add(fd_, this, 0, /*level=*/true)) fail("epoll_ctl");
}

void Listener::stop() {
  stopped_ = true;
  backoff_->timer.cancel();
  if (fd_ >= 0) {
    ::close(fd_);  // also leaves the poller
    fd_ = -1;
  }
}

void Listener::on_ready(unsigned, std::uint32_t) {
  if (!backing_off_) accept_one();
}

void Listener::accept_one() {
  if (stopped_) return;
  for (;;) {
    sockaddr_storage peer;
    socklen_t len = sizeof peer;
    const int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      on_accept_(worker_, fd, reinterpret_cast<const sockaddr*>(&peer));
      return;
    }
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
    worker_.stats().accept_errors.add();
    if ((err == EMFILE || err == ENFILE) && refuse_one_with_503()) return;
    log::Line(log::Level::warn, "accept_error").num("worker", worker_.index()).str("error", std::strerror(err));
    back_off();
    return;
  }
}

// Out of descriptors or memory: pause instead of spinning on accept (the
// socket stays readable, so it leaves the poller for the pause).
void Listener::back_off() {
  backing_off_ = true;
  worker_.poller().remove(fd_);
  backoff_->timer.expires_after(std::chrono::milliseconds(100));
  backoff_->timer.async_wait([this](error_code e) {
    backing_off_ = false;
    if (e || stopped_) return;
    if (!worker_.poller().add(fd_, this, 0, /*level=*/true)) back_off();
  });
  worker_.poke_asio();  // the timer was started outside Asio's handlers
}

}  // namespace weir::net
