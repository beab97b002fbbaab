#include "bench_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string_view>
#include <thread>
#include <vector>

#include "bench_tls.h"
#include "ws/deflate.h"
#include "ws/frame.h"

namespace weir::bench {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

void Histogram::record(std::uint64_t us) {
  ++count_;
  max_ = std::max(max_, us);
  int idx;
  if (us < kSub) {
    idx = static_cast<int>(us);
  } else {
    const int msb = 63 - __builtin_clzll(us);          // >= 6
    const int shift = msb - 5;                          // keep 6 significant bits
    idx = (shift + 1) * kSub / 2 + static_cast<int>((us >> shift) - kSub / 2);
    idx = std::min<int>(idx, static_cast<int>(buckets_.size()) - 1);
  }
  ++buckets_[idx];
}

void Histogram::merge(const Histogram& o) {
  for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += o.buckets_[i];
  count_ += o.count_;
  max_ = std::max(max_, o.max_);
}

std::uint64_t Histogram::percentile(double p) const {
  if (count_ == 0) return 0;
  const auto want = static_cast<std::uint64_t>(p / 100.0 * static_cast<double>(count_ - 1)) + 1;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= want) {
      if (static_cast<int>(i) < kSub) return i;
      const int shift = static_cast<int>(i) / (kSub / 2) - 1;
      const std::uint64_t base = static_cast<std::uint64_t>(i) - static_cast<std::uint64_t>((shift + 1) * kSub / 2) + kSub / 2;
      return ((base + 1) << shift) - 1;  // upper edge of the bucket
    }
  }
  return max_;
}

namespace {

enum class Mode { throughput, latency, connect, hold };

struct Shared {
  const Options* opt;
  Mode mode;
  Clock::time_point start, measure_from, end;
  std::atomic<bool> stop{false};
  TlsContext* tls = nullptr;  // --tls
  std::atomic<bool> tls_described{false};
  std::string tls_info;       // written once, by the first handshake
  std::unique_ptr<JsonMessage> json;  // --json
  ws::Opcode opcode = ws::Opcode::binary;  // of the messages sent and expected back
};

// Fills payload for message `seq`: byte i = (seq * 31 + i) & 0xFF; latency
// mode puts the intended send time (ns since start) in the first 8 bytes.
inline std::uint8_t pattern(std::uint64_t seq, std::size_t i) {
  return static_cast<std::uint8_t>(seq * 31 + i);
}

class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(asio::io_context& io, Shared& sh, Result& res, unsigned index)
      : io_(io), sh_(sh), res_(res), sock_(io), timer_(io), index_(index),
        // Room for a few messages; not zero-filled (8000 held connections must stay cheap).
        rcap_(std::max<std::size_t>(16 * 1024, 4 * (sh.opt->size + 14))),
        rbuf_(new char[rcap_]) {
    // A random, non-zero key per connection: a peer that mishandles masks
    // cannot pass by luck (index-derived keys were mostly zero bytes).
    std::random_device rd;
    do {
      const std::uint32_t k = rd();
      std::memcpy(mask_, &k, 4);
    } while (!mask_[0] || !mask_[1] || !mask_[2] || !mask_[3]);
  }

  void start() { connect(); }

  // Hold mode: open, and answered a ping within the last two intervals.
  bool alive(Clock::time_point at) const {
    const auto window = std::chrono::milliseconds(static_cast<int>(opt().ping_interval_s * 2000) + 500);
    return open_ && last_pong_ + window >= at;
  }

 private:
  const Options& opt() const { return *sh_.opt; }
  bool in_window(Clock::time_point t) const { return t >= sh_.measure_from && t < sh_.end; }

  // Transport: the socket, or TLS over it. Every completion carries the
  // generation of the connection it was started on and is ignored once that
  // connection is closed (shut()), so a failure cannot echo into the next one.
  template <class H>
  void io_read(void* p, std::size_t n, H&& h) {
    if (tls_) return tls_->async_read_some(p, n, std::forward<H>(h));
    sock_.async_read_some(asio::buffer(p, n), std::forward<H>(h));
  }
  template <class H>
  void io_write(const void* p, std::size_t n, H&& h) {
    if (tls_) return tls_->async_write(p, n, std::forward<H>(h));
    asio::async_write(sock_, asio::buffer(p, n), std::forward<H>(h));
  }

  void connect() {
    auto self = shared_from_this();
    cycle_start_ = Clock::now();
    sock_ = tcp::socket(io_);
    tcp::endpoint ep(asio::ip::make_address(opt().address.empty() ? opt().host : opt().address), opt().port);
    error_code ec;
    sock_.open(ep.protocol(), ec);
    if (!opt().sources.empty()) {
      const auto& src = opt().sources[index_ % opt().sources.size()];
      sock_.bind(tcp::endpoint(asio::ip::make_address(src), 0), ec);
    }
    sock_.async_connect(ep, [self, g = gen_](error_code ec) {
      if (g != self->gen_) return;
      if (ec) return self->fail();
      self->sock_.set_option(tcp::no_delay(true));
      if (self->sh_.tls) return self->tls_handshake();
      self->handshake();
    });
  }

  void tls_handshake() {
    auto self = shared_from_this();
    const std::string& name = opt().sni.empty() ? opt().host : opt().sni;
    tls_ = std::make_shared<TlsStream>(*sh_.tls, sock_, name, opt().tls_resume ? session_.get() : nullptr);
    tls_->async_handshake([self, g = gen_](error_code ec) {
      if (g != self->gen_) return;
      if (ec) return self->fail();
      self->tls_counted_ = self->in_window(Clock::now());
      if (self->tls_counted_) {
        ++self->res_.tls_handshakes;
        self->res_.tls_resumed += self->tls_->resumed();
      }
      if (!self->sh_.tls_described.exchange(true)) self->sh_.tls_info = self->tls_->describe();
      self->handshake();
    });
  }

  void handshake() {
    auto self = shared_from_this();
    req_ = "GET " + opt().path + " HTTP/1.1\r\nHost: " + opt().host +
           "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n" +
           (opt().deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "") + "\r\n";
    io_write(req_.data(), req_.size(), [self, g = gen_](error_code ec, std::size_t) {
      if (g != self->gen_) return;
      if (ec) return self->fail();
      self->rlen_ = 0;
      self->read_head();
    });
  }

  // Reads the response head into rbuf_; bytes after it stay there (rlen_).
  void read_head() {
    auto self = shared_from_this();
    io_read(rbuf_.get() + rlen_, rcap_ - rlen_, [self, g = gen_](error_code ec, std::size_t n) {
      if (g != self->gen_) return;
      if (ec) return self->fail();
      self->rlen_ += n;
      const std::string_view got(self->rbuf_.get(), self->rlen_);
      const auto end = got.find("\r\n\r\n");
      if (end == std::string_view::npos) {
        if (self->rlen_ == self->rcap_) return self->fail();
        return self->read_head();
      }
      if (got.substr(0, 12) != "HTTP/1.1 101") return self->fail();
      if (self->opt().deflate && !self->negotiate(got.substr(0, end + 2))) return self->fail();
      if (self->sh_.mode == Mode::connect) {
        // Connect mode: the handshake's latency, TCP connect to the 101 (a
        // session's setup cost as the client sees it).
        const auto now = Clock::now();
        if (self->in_window(now))
          self->res_.latency.record(static_cast<std::uint64_t>(
              std::chrono::duration_cast<std::chrono::microseconds>(now - self->cycle_start_).count()));
      }
      const std::size_t head = end + 4;
      self->rlen_ -= head;
      std::memmove(self->rbuf_.get(), self->rbuf_.get() + head, self->rlen_);
      self->on_open();
    });
  }

  // --deflate: the codecs the 101 agreed to (none when the peer declined).
  bool negotiate(std::string_view head) {
    deflater_.reset();
    inflater_.reset();
    std::vector<std::string_view> values;
    for (std::size_t at = 0; (at = head.find("\r\n", at)) != std::string_view::npos;) {
      at += 2;
      const std::size_t eol = head.find("\r\n", at);
      if (eol == std::string_view::npos) break;
      const std::string_view line = head.substr(at, eol - at);
      const std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      std::string name(line.substr(0, colon));
      for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      if (name == "sec-websocket-extensions") values.push_back(value);
    }
    ws::DeflateSettings ours;
    std::optional<ws::DeflateParams> params;
    std::string why;
    if (!ws::check_response(values, ours, params, why)) return false;
    if (params) {
      const ws::DeflateDirections d = ws::directions(*params, /*weir_is_server=*/false);
      deflater_ = std::make_unique<ws::Deflater>(d.deflate_window_bits, d.deflate_reset, 8, 1);
      inflater_ = std::make_unique<ws::Inflater>(d.inflate_window_bits, d.inflate_reset);
      ++res_.compressed_conns;
    }
    return true;
  }

  void on_open() {
    open_ = true;
    last_pong_ = Clock::now();
    sent_ = recv_ = 0;
    frame_left_ = 0;
    read();
    switch (sh_.mode) {
      case Mode::throughput:
        for (unsigned i = 0; i < opt().inflight; ++i) send_message();
        break;
      case Mode::latency:
        next_send_ = sh_.start + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                     1e9 * opt().connections / opt().rate * index_ / opt().connections));
        schedule();
        break;
      case Mode::connect:
        send_message();
        break;
      case Mode::hold:
        ping();
        break;
    }
  }

  // Appends one masked binary frame for message sent_ to the write queue.
  void send_message() {
    const std::size_t n = std::max<std::size_t>(opt().size, sh_.mode == Mode::latency ? 8 : 0);
    ws::FrameHeader h;
    h.opcode = sh_.opcode;
    h.masked = true;
    h.payload_len = n;
    std::memcpy(h.mask, mask_, 4);
    std::string& out = wq_.emplace_back();
    out.resize(ws::header_size(n, true) + n);
    auto* p = reinterpret_cast<std::uint8_t*>(out.data());
    const std::size_t hl = ws::write_header(p, h);
    if (sh_.json) {
      for (std::size_t i = 0; i < n; ++i) p[hl + i] = sh_.json->byte(sent_, i);
    } else {
      for (std::size_t i = 0; i < n; ++i) p[hl + i] = pattern(sent_, i);
    }
    if (deflater_) {
      // The same message, compressed: framed anew with RSV1.
      zout_.clear();
      if (!deflater_->deflate(std::string_view(reinterpret_cast<const char*>(p + hl), n), zout_)) return fail();
      h.rsv = 0x4;
      h.payload_len = zout_.size();
      out.resize(ws::header_size(zout_.size(), true) + zout_.size());
      p = reinterpret_cast<std::uint8_t*>(out.data());
      const std::size_t zl = ws::write_header(p, h);
      std::memcpy(p + zl, zout_.data(), zout_.size());
      ws::apply_mask(p + zl, zout_.size(), h.mask, 0);
      ++sent_;
      flush();
      return;
    }
    if (sh_.mode == Mode::latency) {
      const std::int64_t t = std::chrono::duration_cast<std::chrono::nanoseconds>(next_send_ - sh_.start).count();
      std::memcpy(p + hl, &t, 8);
      intended_.push_back(t);
    }
    ws::apply_mask(p + hl, n, h.mask, 0);
    ++sent_;
    flush();
  }

  void send_raw(std::string bytes) {
    wq_.push_back(std::move(bytes));
    flush();
  }

  void flush() {
    if (writing_ || wq_.empty()) return;
    writing_ = true;
    // Coalesce everything queued into one write.
    wbuf_.clear();
    for (auto& s : wq_) wbuf_ += s;
    wq_.clear();
    auto self = shared_from_this();
    io_write(wbuf_.data(), wbuf_.size(), [self, g = gen_](error_code ec, std::size_t) {
      if (g != self->gen_) return;
      self->writing_ = false;
      if (ec) return self->fail();
      self->flush();
    });
  }

  void schedule() {
    if (sh_.stop.load(std::memory_order_relaxed)) return;
    auto self = shared_from_this();
    timer_.expires_at(next_send_);
    timer_.async_wait([self](error_code ec) {
      if (ec) return;
      self->send_message();
      self->next_send_ += std::chrono::nanoseconds(
          static_cast<std::int64_t>(1e9 * self->opt().connections / self->opt().rate));
      self->schedule();
    });
  }

  void ping() {
    std::string f(6, '\0');
    ws::FrameHeader h;
    h.opcode = ws::Opcode::ping;
    h.masked = true;
    h.payload_len = 0;
    ws::write_header(reinterpret_cast<std::uint8_t*>(f.data()), h);
    pong_pending_ = true;
    send_raw(std::move(f));
    auto self = shared_from_this();
    timer_.expires_after(std::chrono::milliseconds(static_cast<int>(opt().ping_interval_s * 1000)));
    timer_.async_wait([self](error_code ec) {
      if (ec || self->sh_.stop.load()) return;
      self->ping();
    });
  }

  void read() {
    if (rlen_ > 0) {
      const std::size_t n = rlen_;
      rlen_ = 0;
      return on_bytes(n);
    }
    auto self = shared_from_this();
    io_read(rbuf_.get() + carry_, rcap_ - carry_, [self, g = gen_](error_code ec, std::size_t n) {
      if (g != self->gen_) return;
      if (ec) return self->on_read_error();
      self->on_bytes(n);
    });
  }

  void on_bytes(std::size_t n) {
    std::uint8_t* p = reinterpret_cast<std::uint8_t*>(rbuf_.get());
    std::size_t len = carry_ + n, pos = 0;
    while (pos < len) {
      if (frame_left_ > 0) {
        const std::size_t k = std::min<std::uint64_t>(frame_left_, len - pos);
        if (!ws::is_control(frame_op_)) {
          if (msg_compressed_) zin_.append(reinterpret_cast<const char*>(p + pos), k);  // checked once inflated
          else if (msg_op_ == sh_.opcode) verify(p + pos, k);
          frame_off_ += k;
        }
        frame_left_ -= k;
        pos += k;
        if (frame_left_ == 0) on_frame_done();
        continue;
      }
      ws::FrameHeader h;
      if (ws::parse_header(p + pos, len - pos, h) != ws::HeaderStatus::ok) break;
      pos += h.header_len;
      // A proxy may re-fragment a message (RFC 6455 5.4): messages are
      // verified and counted whole, across their frames.
      frame_op_ = h.opcode;
      frame_fin_ = h.fin;
      if (!ws::is_control(h.opcode) && h.opcode != ws::Opcode::continuation) {
        msg_op_ = h.opcode;
        frame_off_ = 0;
        msg_compressed_ = (h.rsv & 0x4) != 0;
        if (msg_compressed_ && !inflater_) ++mismatch_in_frame_;  // RSV1 never agreed to
        zin_.clear();
      }
      frame_left_ = h.payload_len;
      if (frame_op_ == ws::Opcode::close) closed_ = true;
      if (frame_left_ == 0) on_frame_done();
    }
    carry_ = len - pos;
    if (carry_) std::memmove(p, p + pos, carry_);
    if (closed_) return finish_cycle();
    read();
  }

  void verify(const std::uint8_t* p, std::size_t k) {
    const std::size_t from = sh_.mode == Mode::latency ? 8 : 0;
    for (std::size_t i = 0; i < k; ++i) {
      const std::size_t at = frame_off_ + i;
      if (at < from) {
        reinterpret_cast<std::uint8_t*>(&stamp_)[at] = p[i];
        continue;
      }
      if (p[i] != (sh_.json ? sh_.json->byte(recv_, at) : pattern(recv_, at))) {
        ++mismatch_in_frame_;
        break;
      }
    }
  }

  void on_frame_done() {
    if (frame_op_ == ws::Opcode::pong) {
      pong_pending_ = false;
      last_pong_ = Clock::now();
      return;
    }
    if (ws::is_control(frame_op_) || !frame_fin_ || msg_op_ != sh_.opcode) return;
    if (msg_compressed_ && inflater_) {
      if (inflater_->inflate(zin_, zplain_, 1ull << 30) != ws::Inflater::Status::ok) {
        ++mismatch_in_frame_;
      } else {
        frame_off_ = 0;
        verify(reinterpret_cast<const std::uint8_t*>(zplain_.data()), zplain_.size());
        frame_off_ = zplain_.size();
      }
    }
    const auto now = Clock::now();
    const bool measured = now >= sh_.measure_from && now < sh_.end;
    if (mismatch_in_frame_) ++res_.mismatches;
    mismatch_in_frame_ = 0;
    if (measured) {
      ++res_.messages;
      res_.bytes += frame_off_;
    }
    if (sh_.mode == Mode::latency && !intended_.empty()) {
      const std::int64_t t = intended_.front();
      intended_.pop_front();
      if (measured) {
        const auto sent = sh_.start + std::chrono::nanoseconds(t);
        res_.latency.record(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(now - sent).count()));
      }
    }
    ++recv_;
    if (sh_.stop.load(std::memory_order_relaxed)) return close_now();
    if (sh_.mode == Mode::throughput) send_message();
    if (sh_.mode == Mode::connect) {
      // One echo per cycle: start the close handshake.
      std::string f(8, '\0');
      ws::FrameHeader h;
      h.opcode = ws::Opcode::close;
      h.masked = true;
      h.payload_len = 2;
      const std::size_t hl = ws::write_header(reinterpret_cast<std::uint8_t*>(f.data()), h);
      f[hl] = 0x03;
      f[hl + 1] = static_cast<char>(0xE8);
      f.resize(hl + 2);
      send_raw(std::move(f));
    }
  }

  // Closes the connection (TLS: one close_notify first). Completions of
  // operations started on it are ignored from now on.
  void shut() {
    ++gen_;
    if (tls_) {
      if (tls_counted_) res_.tls_tickets += tls_->tickets();
      if (auto s = tls_->take_session()) session_ = std::move(s);
      tls_->close();
      tls_.reset();
    }
    error_code ignored;
    sock_.close(ignored);
  }

  void finish_cycle() {
    shut();
    if (sh_.mode == Mode::connect) {
      if (Clock::now() >= sh_.measure_from && Clock::now() < sh_.end) ++res_.connects;
      if (sh_.stop.load()) return;
      reset_and_reconnect();
    }
  }

  void reset_and_reconnect() {
    closed_ = false;
    writing_ = false;
    carry_ = rlen_ = 0;
    frame_left_ = 0;
    wq_.clear();
    connect();
  }

  void close_now() {
    timer_.cancel();
    shut();
  }

  void on_read_error() {
    if (sh_.stop.load()) return close_now();
    if (sh_.mode == Mode::connect && closed_) return finish_cycle();
    fail();
  }

  void fail() {
    open_ = false;
    ++res_.errors;
    timer_.cancel();
    shut();
    if (sh_.mode == Mode::connect && !sh_.stop.load()) {
      reset_and_reconnect();
    }
  }

  asio::io_context& io_;
  Shared& sh_;
  Result& res_;
  tcp::socket sock_;
  asio::steady_timer timer_;
  Clock::time_point cycle_start_;  // connect mode: when this cycle's TCP connect began
  std::uint32_t index_;
  std::string req_;
  unsigned gen_ = 0;                 // bumped by shut(): older completions are stale
  std::shared_ptr<TlsStream> tls_;   // --tls: this connection's TLS
  SessionPtr session_;               // --tls-resume: the newest ticket, offered next time
  bool tls_counted_ = false;         // handshake inside the measured window
  std::size_t rcap_;
  std::unique_ptr<char[]> rbuf_;
  std::uint8_t mask_[4];
  std::size_t carry_ = 0, rlen_ = 0;
  std::deque<std::string> wq_;
  std::string wbuf_;
  bool writing_ = false;
  std::uint64_t sent_ = 0, recv_ = 0;
  ws::Opcode frame_op_ = ws::Opcode::binary;
  ws::Opcode msg_op_ = ws::Opcode::binary;  // of the message the current data frame belongs to
  bool frame_fin_ = true;
  std::uint64_t frame_left_ = 0, frame_off_ = 0;  // frame_off_: offset in the current message
  std::uint64_t mismatch_in_frame_ = 0;
  // --deflate, where negotiated.
  std::unique_ptr<ws::Deflater> deflater_;
  std::unique_ptr<ws::Inflater> inflater_;
  bool msg_compressed_ = false;
  std::string zout_, zin_, zplain_;
  std::int64_t stamp_ = 0;
  std::deque<std::int64_t> intended_;
  Clock::time_point next_send_;
  bool closed_ = false;
  bool pong_pending_ = false;
  bool open_ = false;
  Clock::time_point last_pong_;
};

Result run(const Options& o, Mode mode) {
  Shared sh;
  sh.opt = &o;
  sh.mode = mode;
  if (o.json) {
    sh.json = std::make_unique<JsonMessage>(o.size);
    sh.opcode = ws::Opcode::text;
  }
  sh.start = Clock::now();
  sh.measure_from = sh.start + std::chrono::milliseconds(static_cast<int>(o.warmup_s * 1000));
  sh.end = sh.measure_from + std::chrono::milliseconds(static_cast<int>(o.duration_s * 1000));
  std::unique_ptr<TlsContext> tls;
  if (o.tls) {
    tls = std::make_unique<TlsContext>(o.ca, mode == Mode::hold);  // hold: idle buffers freed
    sh.tls = tls.get();
  }
  const unsigned threads = std::max(1u, o.threads);
  std::vector<Result> results(threads);
  std::vector<std::thread> ts;
  std::vector<std::unique_ptr<asio::io_context>> ios;
  for (unsigned t = 0; t < threads; ++t) ios.push_back(std::make_unique<asio::io_context>(1));
  for (unsigned t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      auto& io = *ios[t];
      std::vector<std::shared_ptr<Conn>> conns;
      for (unsigned i = t; i < o.connections; i += threads) {
        conns.push_back(std::make_shared<Conn>(io, sh, results[t], i));
        conns.back()->start();
      }
      asio::steady_timer stop_timer(io);
      stop_timer.expires_at(sh.end);
      stop_timer.async_wait([&](error_code) {
        sh.stop = true;
        // Give in-flight echoes a moment, then end the loop.
        stop_timer.expires_after(std::chrono::milliseconds(300));
        stop_timer.async_wait([&](error_code) { io.stop(); });
      });
      io.run();
      for (auto& c : conns) results[t].alive += c->alive(sh.end);
    });
  }
  // Progress on stderr once a second.
  while (Clock::now() < sh.end) {
    std::this_thread::sleep_for(std::chrono::seconds(1));
    std::fprintf(stderr, "\r  %.0fs / %.0fs ", std::chrono::duration<double>(Clock::now() - sh.start).count(),
                 o.warmup_s + o.duration_s);
  }
  for (auto& t : ts) t.join();
  std::fprintf(stderr, "\n");
  Result total;
  for (auto& r : results) {
    total.messages += r.messages;
    total.bytes += r.bytes;
    total.connects += r.connects;
    total.alive += r.alive;
    total.errors += r.errors;
    total.compressed_conns += r.compressed_conns;
    total.mismatches += r.mismatches;
    total.tls_handshakes += r.tls_handshakes;
    total.tls_resumed += r.tls_resumed;
    total.tls_tickets += r.tls_tickets;
    total.latency.merge(r.latency);
  }
  total.tls_info = sh.tls_info;
  total.seconds = o.duration_s;
  return total;
}

}  // namespace

Result run_throughput(const Options& o) { return run(o, Mode::throughput); }
Result run_latency(const Options& o) { return run(o, Mode::latency); }
Result run_connect(const Options& o) { return run(o, Mode::connect); }
Result run_hold(const Options& o) { return run(o, Mode::hold); }

}  // namespace weir::bench
