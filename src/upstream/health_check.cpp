#include "upstream/health_check.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <array>
#include <memory>

#include "http/base64.h"
#include "http/head.h"
#include "http/upgrade.h"
#include "net/tls.h"
#include "ws/frame.h"

namespace weir::upstream {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr std::size_t kMaxHead = 16 * 1024;

struct Check : std::enable_shared_from_this<Check> {
  Check(asio::io_context& io, const config::HealthCheck& c, const config::Upstream& m,
        std::shared_ptr<const net::TlsClient> t, std::function<void(bool, std::string)> d)
      : conf(c), member(m), tls(std::move(t)), done(std::move(d)), resolver(io), socket(io), timer(io) {}
  ~Check() {
    if (ssl != nullptr) SSL_free(ssl);
  }

  config::HealthCheck conf;
  config::Upstream member;
  std::shared_ptr<const net::TlsClient> tls;  // wss:// member: null = plain
  SSL* ssl = nullptr;                         // on socket's descriptor, once connected
  std::size_t out_pos = 0;
  std::function<void(bool, std::string)> done;
  tcp::resolver resolver;
  tcp::socket socket;
  asio::steady_timer timer;
  std::string out, in, key;
  std::array<char, 4096> buf{};
  bool finished = false;

  void finish(bool ok, std::string why) {
    if (finished) return;
    finished = true;
    timer.cancel();
    resolver.cancel();
    error_code ignored;
    socket.close(ignored);
    done(ok, std::move(why));
  }

  void start() {
    timer.expires_after(conf.timeout);
    timer.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->finish(false, "timeout");
    });
    resolver.async_resolve(member.address.empty() ? member.host : member.address, std::to_string(member.port),
                           [self = shared_from_this()](error_code ec, tcp::resolver::results_type r) {
                             if (self->finished) return;
                             if (ec) return self->finish(false, "resolve: " + ec.message());
                             asio::async_connect(self->socket, r, [self](error_code ec2, const tcp::endpoint&) {
                               if (self->finished) return;
                               if (ec2) return self->finish(false, "connect: " + ec2.message());
                               self->connected();
                             });
                           });
  }

  std::string host() const {
    if (!conf.host.empty()) return conf.host;
    const bool v6 = member.host.find(':') != std::string::npos;
    return (v6 ? "[" + member.host + "]" : member.host) + ":" + std::to_string(member.port);
  }

  void connected() {
    if (tls == nullptr && member.tls) return finish(false, "TLS: no route uses this group (no TLS settings)");
    if (tls == nullptr) return request();
    ssl = tls->new_ssl(member.host, member.port);
    error_code ec;
    socket.native_non_blocking(true, ec);
    if (ssl == nullptr || ec || SSL_set_fd(ssl, socket.native_handle()) != 1)
      return finish(false, "TLS: cannot set up the session");
    tls_step([this] { return SSL_connect(ssl); }, [this](int) { request(); });
  }

  // One TLS operation on the non-blocking socket: again when the socket is
  // ready for what it wants, then next(its result > 0); fails the check on
  // any other error (a certificate the group's ca does not trust, ...).
  void tls_step(std::function<int()> op, std::function<void(int)> next) {
    ERR_clear_error();
    const int r = op();
    if (r > 0) return next(r);
    const int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      socket.async_wait(e == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write,
                        [self = shared_from_this(), op = std::move(op), next = std::move(next)](error_code ec) mutable {
                          if (self->finished) return;
                          if (ec) return self->finish(false, "TLS: " + ec.message());
                          self->tls_step(std::move(op), std::move(next));
                        });
      return;
    }
    char buf[256] = "connection closed";
    if (const unsigned long err = ERR_get_error(); err != 0) ERR_error_string_n(err, buf, sizeof buf);
    if (const long v = SSL_get_verify_result(ssl); v != X509_V_OK)
      return finish(false, std::string("TLS: certificate: ") + X509_verify_cert_error_string(v));
    finish(false, std::string("TLS: ") + buf);
  }

  // out, whole, to the member; then next().
  void write_out(std::function<void()> next) {
    if (ssl == nullptr) {
      asio::async_write(socket, asio::buffer(out), [self = shared_from_this(), next](error_code ec, std::size_t) {
        if (self->finished) return;
        if (ec) return self->finish(false, "write: " + ec.message());
        next();
      });
      return;
    }
    out_pos = 0;
    tls_write(std::move(next));
  }
  void tls_write(std::function<void()> next) {
    if (out_pos == out.size()) return next();
    tls_step([this] { return SSL_write(ssl, out.data() + out_pos, static_cast<int>(out.size() - out_pos)); },
             [this, next = std::move(next)](int n) mutable {
               out_pos += static_cast<std::size_t>(n);
               tls_write(std::move(next));
             });
  }

  // Some bytes from the member, appended to in; then next().
  void read_some(std::function<void()> next) {
    if (ssl == nullptr) {
      socket.async_read_some(asio::buffer(buf), [self = shared_from_this(), next](error_code ec, std::size_t n) {
        if (self->finished) return;
        if (ec) return self->finish(false, "read: " + ec.message());
        self->in.append(self->buf.data(), n);
        next();
      });
      return;
    }
    tls_step([this] { return SSL_read(ssl, buf.data(), static_cast<int>(buf.size())); },
             [this, next = std::move(next)](int n) {
               in.append(buf.data(), static_cast<std::size_t>(n));
               next();
             });
  }

  void request() {
    using Type = config::HealthCheck::Type;
    if (conf.type == Type::tcp) return finish(true, {});
    out = "GET " + conf.path + " HTTP/1.1\r\nHost: " + host() + "\r\nUser-Agent: weir-health-check\r\n";
    if (conf.type == Type::websocket) {
      std::uint8_t raw[16];
      for (int i = 0; i < 16; i += 4) ws::random_mask(raw + i);
      key = http::base64_encode(std::string_view(reinterpret_cast<const char*>(raw), sizeof raw));
      out += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key +
             "\r\n\r\n";
    } else {
      out += "Connection: close\r\n\r\n";
    }
    write_out([this] { read_head(); });
  }

  void read_head() {
    read_some([this] {
      http::Head h;
      switch (http::parse_response_head(in, kMaxHead, h)) {
        case http::ParseStatus::need_more: return read_head();
        case http::ParseStatus::too_large: return finish(false, "response head too large");
        case http::ParseStatus::bad: return finish(false, "malformed response");
        case http::ParseStatus::complete: break;
      }
      on_head(h);
    });
  }

  void on_head(const http::Head& h) {
    if (conf.type == config::HealthCheck::Type::http) {
      if (h.status == conf.expect_status) return finish(true, {});
      return finish(false, "status " + std::to_string(h.status));
    }
    if (h.status != 101) return finish(false, "status " + std::to_string(h.status) + " to the upgrade");
    if (h.get("sec-websocket-accept") != http::compute_accept(key)) return finish(false, "bad Sec-WebSocket-Accept");
    in.erase(0, h.size);
    std::uint8_t frame[2 + 4 + 125];
    const std::size_t n = ws::build_control_frame(frame, ws::Opcode::ping, "weir-health", true);
    out.assign(reinterpret_cast<const char*>(frame), n);
    write_out([this] { read_pong(); });
  }

  // Frames until the pong (a backend may send a greeting first): an
  // unmasked server frame is 2 or 4 (or 10) header bytes + payload.
  void read_pong() {
    while (in.size() >= 2) {
      const auto b0 = static_cast<std::uint8_t>(in[0]), b1 = static_cast<std::uint8_t>(in[1]);
      std::size_t hdr = 2;
      std::uint64_t len = b1 & 0x7f;
      if (len == 126) {
        if (in.size() < 4) break;
        len = (static_cast<std::uint8_t>(in[2]) << 8) | static_cast<std::uint8_t>(in[3]);
        hdr = 4;
      } else if (len == 127) {
        return finish(false, "frame too large before the pong");
      }
      if ((b1 & 0x80) != 0) return finish(false, "masked frame from the server");
      if (in.size() < hdr + len) break;
      if ((b0 & 0x0f) == 0x0a) {
        if (in.compare(hdr, len, "weir-health") != 0) return finish(false, "pong with another payload");
        std::uint8_t frame[2 + 4 + 125];
        const std::size_t n = ws::build_close_frame(frame, 1001, "", true);
        out.assign(reinterpret_cast<const char*>(frame), n);
        // A few bytes into an empty send buffer, best effort.
        if (ssl != nullptr) {
          ERR_clear_error();
          (void)SSL_write(ssl, out.data(), static_cast<int>(out.size()));
        } else {
          error_code ignored;
          asio::write(socket, asio::buffer(out), ignored);
        }
        return finish(true, {});
      }
      if ((b0 & 0x0f) == 0x08) return finish(false, "closed before the pong");
      in.erase(0, hdr + len);
    }
    if (in.size() > kMaxHead) return finish(false, "no pong within 16 KiB");
    read_some([this] { read_pong(); });
  }
};

}  // namespace

void run_health_check(asio::io_context& io, const config::HealthCheck& check, const config::Upstream& member,
                      std::shared_ptr<const net::TlsClient> tls, std::function<void(bool, std::string)> done) {
  std::make_shared<Check>(io, check, member, std::move(tls), std::move(done))->start();
}

}  // namespace weir::upstream
