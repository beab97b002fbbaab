#include "net/listener.h"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/socket_base.hpp>

#include <sys/socket.h>

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
