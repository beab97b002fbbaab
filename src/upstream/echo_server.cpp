#include "upstream/echo_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <unistd.h>

#include <cstring>
#include <optional>

#include "core/ref.h"
#include "http/head.h"
#include "http/upgrade.h"
#include "net/listener.h"
#include "ws/scanner.h"

namespace weir::upstream {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::size_t kMaxHead = 8 * 1024;

// Turns the client's masked frames into unmasked echoes, compacting in place:
// every output header is 4 bytes shorter than its input, so the write cursor
// never passes the read cursor. Pings become pongs; pongs are dropped.
struct EchoSink {
  static constexpr bool wants_payload = true;
  // The current frame's mask and whether it is dropped persist across reads
  // (a frame's payload may span many), so they live in the connection.
  struct FrameState {
    bool skip = false;
    std::uint8_t mask[4] = {0, 0, 0, 0};
  };
  std::uint8_t* base = nullptr;
  FrameState* frame = nullptr;
  std::size_t out = 0;
  bool close = false;

  void on_frame(ws::FrameHeader& h, std::uint8_t*) {
    frame->skip = h.opcode == ws::Opcode::pong;
    std::memcpy(frame->mask, h.mask, 4);
    if (frame->skip) return;
    ws::FrameHeader o = h;
    o.masked = false;
    if (h.opcode == ws::Opcode::ping) o.opcode = ws::Opcode::pong;
    if (h.opcode == ws::Opcode::close) close = true;
    out += ws::write_header(base + out, o);
  }
  void on_payload(std::uint8_t* p, std::size_t n, std::uint64_t offset) {
    if (frame->skip) return;
    ws::apply_mask(p, n, frame->mask, offset);
    std::memmove(base + out, p, n);
    out += n;
  }
  void on_close(std::uint16_t, std::string_view) {}
};

class EchoConn final : public core::RefCounted {
 public:
  EchoConn(core::Worker& w, tcp::socket s, std::chrono::milliseconds delay)
      : worker_(w), sock_(std::move(s)), delay_(delay) {
    error_code ec;
    sock_.set_option(tcp::no_delay(true), ec);
    policy_.expect_masked = true;
    policy_.max_frame_bytes = policy_.max_message_bytes = 1ull << 30;
  }
  ~EchoConn() override {
    if (buf_) worker_.buffers().release(buf_, buf_cap_);
  }

  void read_head() {
    const std::size_t old = head_.size();
    head_.resize(kMaxHead);
    core::Ref<EchoConn> self(this);
    sock_.async_read_some(asio::buffer(head_.data() + old, kMaxHead - old),
                          [self, old](error_code ec, std::size_t n) {
                            self->head_.resize(old + n);
                            if (!ec) self->on_head();
                          });
  }

 private:
  void on_head() {
    http::Head req;
    const auto st = http::parse_request_head(head_, kMaxHead, req);
    if (st == http::ParseStatus::need_more) return read_head();
    std::string reply;
    if (st != http::ParseStatus::complete) {
      reply = http::error_response(st == http::ParseStatus::too_large ? 431 : 400, "bad request");
    } else if (auto refusal = http::validate_upgrade_request(req)) {
      reply = http::error_response(refusal.status, refusal.reason);
    } else {
      reply = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: " + http::compute_accept(req.get("sec-websocket-key")) + "\r\n\r\n";
      pending_in_.assign(head_, req.size);
      upgraded_ = true;
    }
    head_ = std::move(reply);
    if (upgraded_ && delay_.count() > 0) {
      delay_timer_.emplace(sock_.get_executor());
      delay_timer_->expires_after(delay_);
      core::Ref<EchoConn> self(this);
      delay_timer_->async_wait([self](error_code) { self->write_head(); });
      return;
    }
    write_head();
  }

  void write_head() {
    core::Ref<EchoConn> self(this);
    asio::async_write(sock_, asio::buffer(head_), [self](error_code ec, std::size_t) {
      if (ec || !self->upgraded_) {
        error_code ignored;
        self->sock_.shutdown(tcp::socket::shutdown_send, ignored);
        return;
      }
      self->head_.clear();
      self->head_.shrink_to_fit();
      error_code e;
      self->sock_.non_blocking(true, e);
      self->pump();
    });
  }

  void pump() {
    for (int round = 0; round < 8; ++round) {
      if (!buf_ && !(buf_ = worker_.buffers().acquire(0, &buf_cap_))) {
        worker_.stats().buffer_failures.add();
        return;  // out of memory: drop this connection (the Ref goes, the socket closes)
      }
      const std::size_t cap = buf_cap_;
      std::size_t n;
      error_code ec;
      if (!pending_in_.empty()) {
        n = std::min(cap - carry_, pending_in_.size());
        std::memcpy(buf_ + carry_, pending_in_.data(), n);
        pending_in_.erase(0, n);
      } else {
        n = sock_.read_some(asio::buffer(buf_ + carry_, cap - carry_), ec);
        if (ec == asio::error::would_block) return wait_read();
        if (ec) return;  // peer gone: the Ref drops and the socket closes
      }
      const std::size_t total = carry_ + n;
      EchoSink sink;
      sink.base = buf_;
      sink.frame = &frame_;
      const auto r = scanner_.scan(buf_, total, policy_, sink);
      std::size_t out = sink.out;
      if (r.error) {
        out += ws::build_close_frame(buf_ + out, r.error, r.reason, false);
        closing_ = true;
      }
      if (sink.close) closing_ = true;
      // The unscanned tail sits at [consumed, total); move it past the output.
      tail_ = closing_ ? 0 : total - r.consumed;
      if (tail_) std::memmove(tail_buf_, buf_ + r.consumed, tail_);
      wpos_ = 0;
      wend_ = out;
      if (!flush()) return;
      if (closing_) return finish_close();
      if (n < cap - carry_ + 0 && pending_in_.empty()) return wait_read();
    }
    core::Ref<EchoConn> self(this);
    asio::post(sock_.get_executor(), [self] { self->pump(); });
  }

  bool flush() {
    while (wpos_ < wend_) {
      error_code ec;
      const std::size_t w = sock_.write_some(asio::buffer(buf_ + wpos_, wend_ - wpos_), ec);
      if (ec == asio::error::would_block) {
        core::Ref<EchoConn> self(this);
        sock_.async_wait(tcp::socket::wait_write, [self](error_code e) {
          if (e) return;
          if (!self->flush()) return;
          if (self->closing_) return self->finish_close();
          self->pump();
        });
        return false;
      }
      if (ec) {
        closing_ = true;
        return false;
      }
      wpos_ += w;
    }
    std::memcpy(buf_, tail_buf_, tail_);
    carry_ = tail_;
    if (carry_ == 0) {
      worker_.buffers().release(buf_, buf_cap_);
      buf_ = nullptr;
    }
    return true;
  }

  void wait_read() {
    core::Ref<EchoConn> self(this);
    sock_.async_wait(tcp::socket::wait_read, [self](error_code ec) {
      if (!ec) self->pump();
    });
  }

  // The server closes the TCP connection after its Close (RFC 6455 7.1.1).
  void finish_close() {
    error_code ignored;
    sock_.shutdown(tcp::socket::shutdown_send, ignored);
    sock_.close(ignored);
  }

  core::Worker& worker_;
  tcp::socket sock_;
  std::chrono::milliseconds delay_;                 // before the 101 (benchmarks)
  std::optional<asio::steady_timer> delay_timer_;
  std::string head_;
  std::string pending_in_;
  ws::FrameScanner scanner_;
  ws::ScanPolicy policy_;
  EchoSink::FrameState frame_;
  std::uint8_t* buf_ = nullptr;
  std::size_t buf_cap_ = 0;  // its size (the pool's size when it was taken)
  std::size_t carry_ = 0, wpos_ = 0, wend_ = 0, tail_ = 0;
  std::uint8_t tail_buf_[ws::max_header_bytes + ws::max_control_payload];
  bool upgraded_ = false;
  bool closing_ = false;
};

}  // namespace

struct EchoServer::Impl {
  Impl(core::Worker& w, const std::string& address, std::uint16_t port)
      : listener(w, address, port, [this](core::Worker& wk, int fd, const sockaddr* peer) {
          tcp::socket s(wk.io());
          error_code ec;
          s.assign(peer->sa_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
          if (ec) {
            ::close(fd);
            return;
          }
          core::Ref<EchoConn> c(new EchoConn(wk, std::move(s), handshake_delay));
          c->read_head();
          wk.poke_asio();  // called from the worker's loop, outside Asio: a read may have completed already
        }) {}
  std::chrono::milliseconds handshake_delay{0};
  net::Listener listener;
};

EchoServer::EchoServer(core::Worker& worker, const std::string& address, std::uint16_t port)
    : impl_(std::make_unique<Impl>(worker, address, port)) {}
EchoServer::~EchoServer() = default;
std::uint16_t EchoServer::port() const { return impl_->listener.port(); }
core::Worker& EchoServer::worker() const { return impl_->listener.worker(); }
void EchoServer::start() { impl_->listener.start(); }
void EchoServer::stop() { impl_->listener.stop(); }
void EchoServer::set_handshake_delay(std::chrono::milliseconds d) { impl_->handshake_delay = d; }

}  // namespace weir::upstream
