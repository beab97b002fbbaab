#include "upstream/prewarm.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <list>
#include <map>

#include "core/clock.h"
#include "core/worker.h"
#include "http/upgrade.h"
#include "net/stream.h"
#include "net/tls.h"
#include "observability/log.h"
#include "observability/metrics.h"
#include "upstream/group.h"
#include "upstream/group_metrics.h"
#include "ws/frame.h"

namespace weir::upstream {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr std::size_t kMaxHead = 16 * 1024;
// A backend greeting is kept for the session that takes the connection; a
// backend that streams into an idle connection is not a pool's business.
constexpr std::size_t kMaxEarly = 64 * 1024;
constexpr std::int64_t kTickMs = 100;
constexpr std::int64_t kBackoffMs = 1'000, kMaxBackoffMs = 30'000;

// A 16-byte random key, base64 (22 characters + "==").
std::string make_key() {
  std::uint8_t raw[16];
  for (int i = 0; i < 16; i += 4) ws::random_mask(raw + i);
  static constexpr char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string key;
  for (int i = 0; i < 15; i += 3) {
    const unsigned v = (raw[i] << 16) | (raw[i + 1] << 8) | raw[i + 2];
    for (int s = 18; s >= 0; s -= 6) key += b64[(v >> s) & 63];
  }
  key += b64[(raw[15] >> 2) & 63];
  key += b64[(raw[15] << 4) & 63];
  key += "==";
  return key;
}

struct Families {
  const char* name;
  const char* help;
};
constexpr Families kHits{"weir_upstream_prewarm_hits_total",
                         "Sessions that got a pre-warmed connection to the member (no connect or upstream handshake)"};
constexpr Families kMisses{"weir_upstream_prewarm_misses_total",
                           "Sessions of a generic route that found no idle pre-warmed connection and connected as usual"};
constexpr Families kDiscarded{"weir_upstream_prewarm_discarded_total",
                              "Idle pre-warmed connections closed without being used, by reason"};
constexpr Families kFillFailures{"weir_upstream_prewarm_fill_failures_total",
                                 "Pre-warmed connections that failed to connect or to get their 101"};
constexpr Families kIdle{"weir_upstream_prewarm_idle", "Idle pre-warmed connections to the member (all workers)"};
constexpr const char* kReasons[] = {"closed", "pong_timeout", "max_idle", "unavailable", "reload"};

obs::Labels member_labels(std::string_view group, std::string_view member) {
  return {{"group", std::string(group)}, {"upstream", std::string(member)}};
}

}  // namespace

Pooled::~Pooled() {
  if (ssl != nullptr) SSL_free(ssl);
  if (fd >= 0) ::close(fd);
}

void declare_prewarm_metrics(const Group& g) {
  if (g.conf().prewarm.size == 0) return;
  auto& r = obs::Registry::global();
  for (std::size_t i = 0; i < g.size(); ++i) {
    const auto l = member_labels(g.label(), g.member(i).up.text);
    r.counter(kHits.name, kHits.help, l);
    r.counter(kMisses.name, kMisses.help, l);
    r.counter(kFillFailures.name, kFillFailures.help, l);
    r.gauge(kIdle.name, kIdle.help, l);
  }
  for (const char* why : kReasons) r.counter(kDiscarded.name, kDiscarded.help, {{"group", g.label()}, {"reason", why}});
}

std::int64_t prewarm_idle(const Group& g, std::size_t i) {
  if (g.conf().prewarm.size == 0) return -1;
  auto& r = obs::Registry::global();
  return r.value(r.gauge(kIdle.name, kIdle.help, member_labels(g.label(), g.member(i).up.text)));
}

struct PrewarmPools::Impl : std::enable_shared_from_this<PrewarmPools::Impl> {
  struct Pool;

  struct Conn {
    enum class State { connecting, idle, gone };
    Conn(asio::io_context& io, Pool* p) : pool(p), socket(io), resolver(io) {}
    Conn(const Conn&) = delete;
    Conn& operator=(const Conn&) = delete;
    ~Conn() {
      if (ssl != nullptr) SSL_free(ssl);
    }
    Pool* pool;  // valid while state != gone
    State state = State::connecting;
    tcp::socket socket;
    tcp::resolver resolver;
    SSL* ssl = nullptr;     // wss:// members, bound to the socket with `drained`
    bool drained = false;
    std::size_t sent = 0;   // of `out`
    std::string key, out, in, head, early;
    http::Head response;
    std::array<char, 4096> buf{};
    std::int64_t started_ms = 0, idle_since_ms = 0, ping_sent_ms = 0, last_ping_ms = 0;
  };
  using ConnPtr = std::shared_ptr<Conn>;

  struct Pool {
    std::shared_ptr<MemberState> state;
    config::Upstream up;
    config::Prewarm conf;
    std::shared_ptr<const net::TlsClient> tls;  // the group's upstream TLS (wss:// members)
    std::string group;
    // The member's group in the latest generation, for passive health: a
    // fill is a connection to the member like any other.
    std::shared_ptr<const Group> owner;
    std::size_t index = 0;
    std::list<ConnPtr> conns;  // connecting and idle; the oldest idle first
    std::size_t idle = 0;
    std::int64_t next_fill_ms = 0;     // no fill before (a backoff)
    std::int64_t backoff_set_ms = 0;   // when the backoff was last set
    unsigned fail_streak = 0;          // backoffs in a row
    std::uint32_t hits = 0, misses = 0, fill_failures = 0, idle_gauge = 0;
    bool seen = false;  // named by the latest set_groups
  };

  Impl(core::Worker& w, std::uint16_t echo) : worker(w), echo_port(echo), timer(w.io()) {}

  core::Worker& worker;
  std::uint16_t echo_port;
  asio::steady_timer timer;
  // By member state and path: a reload that keeps both keeps the pool.
  std::map<std::pair<const MemberState*, std::string>, std::unique_ptr<Pool>> pools;
  bool stopped = false;
  bool ticking = false;

  obs::Cell* cells() { return worker.cells(); }

  void count_discard(const Pool& p, const char* why) {
    // Rare (a discard), so the lookup is not cached.
    cells()[obs::Registry::global().counter(kDiscarded.name, kDiscarded.help, {{"group", p.group}, {"reason", why}}).at]
        .add();
  }

  static bool member_up(const Pool& p, std::int64_t now) {
    const MemberState& s = *p.state;
    return s.healthy.load(std::memory_order_relaxed) && !s.ejected(now) && !s.draining();
  }

  // Takes c out of its pool and closes it; why: the discard reason (null:
  // handed out or a failed fill, counted elsewhere).
  void drop(const ConnPtr& c, const char* why) {
    if (c->state == Conn::State::gone) return;
    Pool& p = *c->pool;
    if (c->state == Conn::State::idle) {
      --p.idle;
      cells()[p.idle_gauge].sub();
      if (why != nullptr) count_discard(p, why);
    }
    c->state = Conn::State::gone;
    c->pool = nullptr;
    p.conns.remove(c);
    c->resolver.cancel();
    error_code ignored;
    c->socket.close(ignored);
  }

  // Passive health (Group::report), as a session's connect would.
  void report(const Pool& p, bool ok) {
    if (p.owner && p.owner->report(p.index, ok, core::coarse_now_ms()))
      count_group_event(cells(), GroupEvent::ejection, p.owner->label(), p.up.text);
  }

  // member_fault: the member failed (connect, TLS, timeout, a 5xx), as a
  // session's connect would count it; not its answer to our request (a 404
  // for a wrong `path`) or our own configuration.
  void fill_failed(const ConnPtr& c, const std::string& why, bool member_fault = true) {
    if (c->state != Conn::State::connecting) return;
    Pool& p = *c->pool;
    cells()[p.fill_failures].add();
    // The fills started together fail together: only one that started after
    // the last backoff was set makes it longer.
    const std::int64_t now = core::coarse_now_ms();
    if (p.fail_streak == 0 || c->started_ms >= p.backoff_set_ms) {
      // Once per backoff step, like the backoff itself: the size x workers
      // fills that start together and fail together are one failure of the
      // member for passive health, not a burst that ejects it at once.
      report(p, !member_fault);
      if (p.fail_streak++ == 0) {
        log::Line(log::Level::warn, "upstream.prewarm_fail").str("group", p.group).str("upstream", p.up.text).str("error", why);
      }
      const std::int64_t backoff = std::min<std::int64_t>(kBackoffMs << std::min(p.fail_streak - 1, 5u), kMaxBackoffMs);
      p.backoff_set_ms = now;
      p.next_fill_ms = now + backoff;
    }
    drop(c, nullptr);
  }

  void set_groups(const std::vector<std::shared_ptr<const Group>>& groups,
                  const std::vector<std::shared_ptr<const net::TlsClient>>& tls) {
    for (auto& [k, p] : pools) p->seen = false;
    auto& reg = obs::Registry::global();
    for (std::size_t gi = 0; gi < groups.size(); ++gi) {
      const auto& g = groups[gi];
      const auto& conf = g->conf().prewarm;
      if (conf.size == 0) continue;
      for (std::size_t i = 0; i < g->size(); ++i) {
        auto& slot = pools[{&g->state(i), conf.path}];
        if (!slot) {
          slot = std::make_unique<Pool>();
          slot->state = g->state_ptr(i);
          slot->group = g->label();
          const auto l = member_labels(g->label(), g->member(i).up.text);
          slot->hits = reg.counter(kHits.name, kHits.help, l).at;
          slot->misses = reg.counter(kMisses.name, kMisses.help, l).at;
          slot->fill_failures = reg.counter(kFillFailures.name, kFillFailures.help, l).at;
          slot->idle_gauge = reg.gauge(kIdle.name, kIdle.help, l).at;
        }
        slot->up = g->member(i).up;
        slot->conf = conf;
        slot->tls = gi < tls.size() ? tls[gi] : nullptr;
        slot->owner = g;
        slot->index = i;
        slot->seen = true;
      }
    }
    for (auto it = pools.begin(); it != pools.end();) {
      if (it->second->seen) {
        ++it;
        continue;
      }
      close_all(*it->second, "reload");
      it = pools.erase(it);
    }
    tick();
  }

  void close_all(Pool& p, const char* why) {
    while (!p.conns.empty()) drop(ConnPtr(p.conns.front()), why);
  }

  void stop() {
    stopped = true;
    timer.cancel();
    for (auto& [k, p] : pools) close_all(*p, nullptr);
    pools.clear();
  }

  // Every kTickMs while there are pools: pings, deadlines, refills.
  void tick() {
    if (stopped) return;
    const std::int64_t now = core::coarse_now_ms();
    for (auto& [k, pp] : pools) {
      Pool& p = *pp;
      const bool up = member_up(p, now);
      std::vector<ConnPtr> conns(p.conns.begin(), p.conns.end());
      std::size_t kept = 0;
      for (const ConnPtr& c : conns) {
        if (c->state == Conn::State::connecting) {
          if (now - c->started_ms >= p.conf.timeout.count()) fill_failed(c, "timeout");
          else ++kept;
          continue;
        }
        if (!up) drop(c, "unavailable");
        else if (kept >= p.conf.size) drop(c, "reload");  // a reload made the pool smaller
        else if (now - c->idle_since_ms >= p.conf.max_idle.count()) drop(c, "max_idle");
        else if (c->ping_sent_ms != 0 && now - c->ping_sent_ms >= p.conf.timeout.count()) drop(c, "pong_timeout");
        else {
          ++kept;
          if (c->ping_sent_ms == 0 && now - c->last_ping_ms >= p.conf.ping_interval.count()) ping(c, now);
        }
      }
      if (up) fill(p, now);
    }
    if (pools.empty()) {
      ticking = false;
      return;
    }
    if (ticking) return;  // the running timer comes back here
    ticking = true;
    arm();
  }

  void arm() {
    timer.expires_after(std::chrono::milliseconds(kTickMs));
    timer.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->stopped) return;
      self->ticking = false;
      self->tick();
    });
    worker.poke_asio();
  }

  // Sends a small frame without Asio (an idle connection has nothing else
  // to write): false when it did not fit at once or the socket is broken.
  static bool send_now(Conn& c, const std::uint8_t* data, std::size_t n) {
    const net::IoResult r = net::write_some(c.socket.native_handle(), c.ssl, data, n);
    return r.status == net::Io::done && r.n == n;
  }

  void ping(const ConnPtr& c, std::int64_t now) {
    std::uint8_t frame[2 + 4 + 125];
    const std::size_t n = ws::build_control_frame(frame, ws::Opcode::ping, "weir-prewarm", true);
    if (!send_now(*c, frame, n)) {
      drop(c, "closed");
      return;
    }
    c->ping_sent_ms = now;
    c->last_ping_ms = now;
  }

  // Frames the backend sent to an idle connection; false when it was dropped.
  bool scan(const ConnPtr& c) {
    IdleScan s = scan_idle_frames(c->in, c->early, kMaxEarly);
    if (s.verdict != IdleScan::Verdict::ok) {
      drop(c, "closed");
      return false;
    }
    if (s.pong) c->ping_sent_ms = 0;
    for (const auto& payload : s.pings) {
      std::uint8_t frame[2 + 4 + 125];
      const std::size_t n = ws::build_control_frame(frame, ws::Opcode::pong, payload, true);
      if (!send_now(*c, frame, n)) {
        drop(c, "closed");
        return false;
      }
    }
    return true;
  }

  void fill(Pool& p, std::int64_t now) {
    if (stopped || now < p.next_fill_ms) return;
    while (p.conns.size() < p.conf.size) start(p, now);
  }

  void start(Pool& p, std::int64_t now) {
    auto c = std::make_shared<Conn>(worker.io(), &p);
    c->started_ms = now;
    p.conns.push_back(c);
    const auto& up = p.up;
    if (up.kind == config::Upstream::Kind::echo) {
      connect(c, {tcp::endpoint(asio::ip::address_v4::loopback(), echo_port)});
      return;
    }
    error_code ec;
    const auto addr = asio::ip::make_address(up.address.empty() ? up.host : up.address, ec);
    if (!ec) {
      connect(c, {tcp::endpoint(addr, up.port)});
      return;
    }
    // Asio resolves on a thread of its own: the loop must poll for the answer.
    worker.poller().foreign_begin();
    c->resolver.async_resolve(up.host, std::to_string(up.port),
                              [self = shared_from_this(), c](error_code ec, tcp::resolver::results_type r) {
                                self->worker.poller().foreign_end();
                                if (c->state != Conn::State::connecting) return;
                                if (ec || r.empty()) return self->fill_failed(c, "resolve: " + ec.message());
                                std::vector<tcp::endpoint> eps;
                                for (const auto& e : r) eps.push_back(e.endpoint());
                                self->connect(c, std::move(eps));
                              });
    worker.poke_asio();
  }

  void connect(const ConnPtr& c, std::vector<tcp::endpoint> eps) {
    asio::async_connect(c->socket, eps, [self = shared_from_this(), c](error_code ec, const tcp::endpoint&) {
      if (c->state != Conn::State::connecting) return;
      if (ec) return self->fill_failed(c, "connect: " + ec.message());
      error_code ignored;
      c->socket.set_option(tcp::no_delay(true), ignored);
      c->socket.non_blocking(true, ignored);  // the reads and writes below are net::'s, readiness-driven
      self->send_upgrade(c);
    });
    worker.poke_asio();
  }

  // The next step of c once its socket is ready for what r wanted; a
  // failure on the way: a failed fill while connecting, a discard when idle.
  using Step = void (Impl::*)(const ConnPtr&);
  void wait(const ConnPtr& c, const net::IoResult& r, Step next) {
    const auto want = r.status == net::Io::want_write ? tcp::socket::wait_write : tcp::socket::wait_read;
    c->socket.async_wait(want, [self = shared_from_this(), c, next, st = c->state](error_code ec) {
      if (c->state != st) return;
      if (ec) return self->lost(c, "wait: " + ec.message());
      c->drained = false;
      (self.get()->*next)(c);
    });
    worker.poke_asio();
  }
  void lost(const ConnPtr& c, const std::string& why) {
    if (c->state == Conn::State::connecting) fill_failed(c, why);
    else drop(c, "closed");
  }

  void send_upgrade(const ConnPtr& c) {
    const auto& up = c->pool->up;
    if (up.tls && c->ssl == nullptr) {
      c->ssl = c->pool->tls ? c->pool->tls->new_ssl(up.host, up.port) : nullptr;
      if (c->ssl == nullptr) return fill_failed(c, "tls: no TLS context for the member", false);
      if (!net::attach_socket(c->ssl, c->socket.native_handle(), &c->drained))
        return fill_failed(c, "tls: out of memory", false);
      return tls_step(c);
    }
    std::string host;
    if (up.kind == config::Upstream::Kind::echo) {
      host = "127.0.0.1:" + std::to_string(echo_port);
    } else {
      const bool v6 = up.host.find(':') != std::string::npos;
      host = (v6 ? "[" + up.host + "]" : up.host) + ":" + std::to_string(up.port);
    }
    c->key = make_key();
    c->out = "GET " + c->pool->conf.path + " HTTP/1.1\r\nHost: " + host +
             "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
             c->key + "\r\nUser-Agent: weir-prewarm\r\n\r\n";
    c->sent = 0;
    write_upgrade(c);
  }

  // wss://: the TLS handshake (verification as the sessions': TlsClient::new_ssl).
  void tls_step(const ConnPtr& c) {
    const net::IoResult r = net::handshake(c->ssl);
    if (r.would_block()) return wait(c, r, &Impl::tls_step);
    if (r.status != net::Io::done) return fill_failed(c, "tls: " + net::describe(r));
    send_upgrade(c);
  }

  void write_upgrade(const ConnPtr& c) {
    while (c->sent < c->out.size()) {
      const net::IoResult r = net::write_some(c->socket.native_handle(), c->ssl, c->out.data() + c->sent,
                                              c->out.size() - c->sent);
      if (r.would_block()) return wait(c, r, &Impl::write_upgrade);
      if (r.status != net::Io::done) return fill_failed(c, "write: " + net::describe(r));
      c->sent += r.n;
    }
    std::string().swap(c->out);
    read_head(c);
  }

  // Reads what is there onto c->in: done (something came), would block, or
  // the connection ended.
  net::IoResult read_in(Conn& c) {
    const net::IoResult r = net::read_some(c.socket.native_handle(), c.ssl, c.buf.data(), c.buf.size());
    if (r.status == net::Io::done) c.in.append(c.buf.data(), r.n);
    return r;
  }

  void read_head(const ConnPtr& c) {
    for (;;) {
      const net::IoResult r = read_in(*c);
      if (r.would_block()) return wait(c, r, &Impl::read_head);
      if (r.status != net::Io::done) return fill_failed(c, "read: " + net::describe(r));
      switch (http::parse_response_head(c->in, kMaxHead, c->response)) {
        case http::ParseStatus::need_more: continue;
        case http::ParseStatus::too_large: return fill_failed(c, "response head too large");
        case http::ParseStatus::bad: return fill_failed(c, "malformed response");
        case http::ParseStatus::complete: break;
      }
      return on_head(c);
    }
  }

  void on_head(const ConnPtr& c) {
    // Checked as any upstream 101 is, against the request we sent (no
    // subprotocol or extension offered: none may come back).
    http::Head ours;
    const http::Field key{"Sec-WebSocket-Key", c->key};
    ours.fields.push_back(key);
    const auto verdict = http::check_upstream_response(c->response, ours);
    if (verdict.refusal) {
      const unsigned st = c->response.status;
      return fill_failed(c, verdict.refusal.reason, st >= 500 && st <= 599);
    }
    c->head = c->in.substr(0, c->response.size);
    c->in.erase(0, c->response.size);
    Pool& p = *c->pool;
    const std::int64_t now = core::coarse_now_ms();
    report(p, true);
    c->state = Conn::State::idle;
    c->idle_since_ms = c->last_ping_ms = now;
    ++p.idle;
    cells()[p.idle_gauge].add();
    p.fail_streak = 0;
    p.next_fill_ms = 0;
    // The oldest idle first: take() hands out the front.
    p.conns.remove(c);
    auto pos = std::find_if(p.conns.begin(), p.conns.end(), [](const ConnPtr& x) { return x->state != Conn::State::idle; });
    p.conns.insert(pos, c);
    if (!scan(c)) return;
    read_idle(c);
  }

  void read_idle(const ConnPtr& c) {
    if (still_open(c)) wait(c, net::IoResult{0, net::Io::want_read}, &Impl::read_idle);
  }

  // Reads what came since the last look (a FIN or a Close may be sitting in
  // the socket while this batch of events runs): false when it is dead.
  bool still_open(const ConnPtr& c) {
    for (;;) {
      const net::IoResult r = read_in(*c);
      if (r.status == net::Io::done) {
        if (!scan(c)) return false;
        continue;
      }
      // TLS may want to write to read on (a key update): the idle wait
      // covers it, since the next read retries.
      if (r.would_block()) return true;
      drop(c, "closed");
      return false;
    }
  }

  std::unique_ptr<Pooled> take(const Group& g, std::size_t i) {
    const auto& conf = g.conf().prewarm;
    auto it = pools.find({&g.state(i), conf.path});
    if (it == pools.end()) return nullptr;
    Pool& p = *it->second;
    std::unique_ptr<Pooled> out;
    // The pick checked the member; its state may have changed since the
    // last tick closed this pool's connections.
    const bool up = member_up(p, core::coarse_now_ms());
    while (up && !out && !p.conns.empty() && p.conns.front()->state == Conn::State::idle) {
      ConnPtr c = p.conns.front();
      if (!still_open(c)) continue;
      out = std::make_unique<Pooled>();
      out->head = std::move(c->head);
      if (http::parse_response_head(out->head, kMaxHead, out->response) != http::ParseStatus::complete) {
        drop(c, "closed");  // parsed once already: cannot happen
        out.reset();
        continue;
      }
      out->early = std::move(c->early);
      out->early += c->in;  // a frame begun, if any
      error_code ec;
      const int fd = c->socket.release(ec);
      out->ssl = c->ssl;  // its BIO still names c->drained: the taker binds it anew
      c->ssl = nullptr;
      drop(c, nullptr);
      if (ec || fd < 0) {
        count_discard(p, "closed");
        out.reset();
        continue;
      }
      // Asio may have made it non-blocking only for itself: the relay needs it so.
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      out->fd = fd;
    }
    cells()[out ? p.hits : p.misses].add();
    if (member_up(p, core::coarse_now_ms())) fill(p, core::coarse_now_ms());
    return out;
  }
};

PrewarmPools::PrewarmPools(core::Worker& worker, std::uint16_t echo_port)
    : impl_(std::make_shared<Impl>(worker, echo_port)) {}

PrewarmPools::~PrewarmPools() { impl_->stop(); }

void PrewarmPools::set_groups(const std::vector<std::shared_ptr<const Group>>& groups,
                              const std::vector<std::shared_ptr<const net::TlsClient>>& tls) {
  impl_->set_groups(groups, tls);
}

std::unique_ptr<Pooled> PrewarmPools::take(const Group& g, std::size_t i) { return impl_->take(g, i); }

std::size_t PrewarmPools::idle(const Group& g, std::size_t i) const {
  auto it = impl_->pools.find({&g.state(i), g.conf().prewarm.path});
  return it == impl_->pools.end() ? 0 : it->second->idle;
}

void PrewarmPools::stop() { impl_->stop(); }

}  // namespace weir::upstream
