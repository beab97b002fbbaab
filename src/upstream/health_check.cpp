#include "upstream/health_check.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <memory>

#include "http/head.h"
#include "http/upgrade.h"
#include "ws/frame.h"

namespace weir::upstream {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr std::size_t kMaxHead = 16 * 1024;

struct Check : std::enable_shared_from_this<Check> {
  Check(asio::io_context& io, const config::HealthCheck& c, const config::Upstream& m,
        std::function<void(bool, std::string)> d)
      : conf(c), member(m), done(std::move(d)), resolver(io), socket(io), timer(io) {}

  config::HealthCheck conf;
  config::Upstream member;
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
    resolver.async_resolve(member.host, std::to_string(member.port),
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
    using Type = config::HealthCheck::Type;
    if (conf.type == Type::tcp) return finish(true, {});
    out = "GET " + conf.path + " HTTP/1.1\r\nHost: " + host() + "\r\nUser-Agent: weir-health-check\r\n";
    if (conf.type == Type::websocket) {
      std::uint8_t raw[16];
      for (int i = 0; i < 16; i += 4) ws::random_mask(raw + i);
      static constexpr char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      // 16 bytes -> 22 characters + "==".
      for (int i = 0; i < 15; i += 3) {
        const unsigned v = (raw[i] << 16) | (raw[i + 1] << 8) | raw[i + 2];
        key += b64[(v >> 18) & 63];
        key += b64[(v >> 12) & 63];
        key += b64[(v >> 6) & 63];
        key += b64[v & 63];
      }
      key += b64[(raw[15] >> 2) & 63];
      key += b64[(raw[15] << 4) & 63];
      key += "==";
      out += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key +
             "\r\n\r\n";
    } else {
      out += "Connection: close\r\n\r\n";
    }
    asio::async_write(socket, asio::buffer(out), [self = shared_from_this()](error_code ec, std::size_t) {
      if (self->finished) return;
      if (ec) return self->finish(false, "write: " + ec.message());
      self->read_head();
    });
  }

  void read_head() {
    socket.async_read_some(asio::buffer(buf), [self = shared_from_this()](error_code ec, std::size_t n) {
      if (self->finished) return;
      if (ec) return self->finish(false, "read: " + ec.message());
      self->in.append(self->buf.data(), n);
      http::Head h;
      switch (http::parse_response_head(self->in, kMaxHead, h)) {
        case http::ParseStatus::need_more: return self->read_head();
        case http::ParseStatus::too_large: return self->finish(false, "response head too large");
        case http::ParseStatus::bad: return self->finish(false, "malformed response");
        case http::ParseStatus::complete: break;
      }
      self->on_head(h);
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
    asio::async_write(socket, asio::buffer(out), [self = shared_from_this()](error_code ec, std::size_t) {
      if (self->finished) return;
      if (ec) return self->finish(false, "write: " + ec.message());
      self->read_pong();
    });
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
        error_code ignored;
        asio::write(socket, asio::buffer(out), ignored);  // a few bytes into an empty send buffer
        return finish(true, {});
      }
      if ((b0 & 0x0f) == 0x08) return finish(false, "closed before the pong");
      in.erase(0, hdr + len);
    }
    if (in.size() > kMaxHead) return finish(false, "no pong within 16 KiB");
    socket.async_read_some(asio::buffer(buf), [self = shared_from_this()](error_code ec, std::size_t n) {
      if (self->finished) return;
      if (ec) return self->finish(false, "read: " + ec.message());
      self->in.append(self->buf.data(), n);
      self->read_pong();
    });
  }
};

}  // namespace

void run_health_check(asio::io_context& io, const config::HealthCheck& check, const config::Upstream& member,
                      std::function<void(bool, std::string)> done) {
  std::make_shared<Check>(io, check, member, std::move(done))->start();
}

}  // namespace weir::upstream
