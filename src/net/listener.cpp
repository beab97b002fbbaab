#include "net/listener.h"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/socket_base.hpp>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "observability/log.h"

namespace weir::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {
struct ReusePort {
  template <class P> int level(const P&) const { return SOL_SOCKET; }
  template <class P> int name(const P&) const { return SO_REUSEPORT; }
  template <class P> const void* data(const P&) const { return &value; }
  template <class P> std::size_t size(const P&) const { return sizeof(value); }
  int value = 1;
};
}  // namespace

Listener::Listener(core::Worker& worker, const std::string& address, std::uint16_t port,
                   OnAccept on_accept)
    : worker_(worker), acceptor_(worker.io()), backoff_(worker.io()), on_accept_(std::move(on_accept)) {
  const tcp::endpoint ep(asio::ip::make_address(address), port);
  acceptor_.open(ep.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.set_option(ReusePort{});
  acceptor_.bind(ep);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  port_ = acceptor_.local_endpoint().port();
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

Listener::~Listener() {
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

bool Listener::refuse_one_with_503() {
  if (reserve_fd_ < 0) return false;
  ::close(reserve_fd_);
  reserve_fd_ = -1;
  const int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0) {
    static constexpr char kResponse[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 25\r\n"
        "Connection: close\r\n\r\nout of file descriptors.\n";
    [[maybe_unused]] auto n = ::send(fd, kResponse, sizeof kResponse - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    ::close(fd);
    worker_.stats().refused.add();
    log::Line(log::Level::warn, "refused")
        .num("worker", worker_.index())
        .num("status", 503)
        .str("reason", "out of file descriptors");
  }
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0;
}

void Listener::start() { accept_next(); }

void Listener::stop() {
  stopped_ = true;
  error_code ignored;
  backoff_.cancel();
  acceptor_.close(ignored);
}

void Listener::accept_next() {
  if (stopped_) return;
  acceptor_.async_accept(worker_.io(), [this](error_code ec, tcp::socket sock) {
    if (stopped_) return;
    if (ec == asio::error::no_descriptors || ec.value() == ENFILE) {
      worker_.stats().accept_errors.add();
      if (refuse_one_with_503()) {
        accept_next();
        return;
      }
    }
    if (ec) {
      worker_.stats().accept_errors.add();
      log::Line(log::Level::warn, "accept_error").num("worker", worker_.index()).str("error", ec.message());
      // Out of descriptors or memory: back off instead of spinning on accept.
      backoff_.expires_after(std::chrono::milliseconds(100));
      backoff_.async_wait([this](error_code e) {
        if (!e) accept_next();
      });
      return;
    }
    on_accept_(worker_, std::move(sock));
    accept_next();
  });
}

}  // namespace weir::net
