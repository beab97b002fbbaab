// Session, from accept to the 101: read and check the client's request, pick a
// route and an upstream, connect, do the client-side handshake with the
// backend, and answer the client. Every refusal is an HTTP status, logged.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>

#include <fmt/format.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/clock.h"
#include "net/stream.h"
#include "net/tls.h"
#include "http/head.h"
#include "http/upgrade.h"
#include "observability/log.h"
#include "proxy/gateway.h"
#include "proxy/route_match.h"
#include "proxy/runtime.h"
#include "proxy/handshake_state.h"
#include "proxy/inspect.h"
#include "proxy/session.h"
#include "filters/session_filters.h"

namespace weir::proxy {

namespace {
// A filter's headers as fields for the HTTP builders; a name or value that
// could split the head (CR, LF, NUL) is left out rather than sent.
std::vector<http::Field> header_fields(const std::vector<filters::Header>* headers) {
  std::vector<http::Field> out;
  if (headers == nullptr) return out;
  auto clean = [](std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos; };
  for (const auto& h : *headers)
    if (!h.name.empty() && clean(h.name) && clean(h.value)) out.push_back({h.name, h.value});
  return out;
}
}  // namespace

namespace asio = boost::asio;
using boost::system::error_code;


namespace {

// Handshake heads are read into buffers that start small and double up to the
// limit: thousands of handshakes in flight must not each pin the maximum
// (which would also leave the heap fragmented once they are freed).
constexpr std::size_t kHeadChunk = 1024;
constexpr std::size_t kMaxUpstreamHead = 16 * 1024;

std::size_t next_read_size(const std::string& buf, std::size_t max) {
  const std::size_t want = std::max(kHeadChunk, buf.size());  // double each time
  return std::min(want, max - std::min(max, buf.size()));
}

std::uint64_t next_session_id(unsigned worker) {
  thread_local std::uint64_t seq = 0;
  return (++seq << 8) | (worker & 0xFF);
}

std::string format_peer(const sockaddr* peer) {
  char ip[INET6_ADDRSTRLEN] = "";
  if (peer == nullptr) return {};
  if (peer->sa_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(peer);
    ::inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    return fmt::format("{}:{}", ip, ntohs(a->sin_port));
  }
  if (peer->sa_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(peer);
    ::inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    return fmt::format("[{}]:{}", ip, ntohs(a->sin6_port));
  }
  return {};
}

// The free list behind Session::operator new (one per worker thread; blocks
// are reused, never returned). Sanitizer builds use plain new/delete so that
// use-after-free stays visible.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kPoolSessions = false;
#else
constexpr bool kPoolSessions = true;
#endif

struct FreeBlock {
  FreeBlock* next;
};

// Chunks are never freed: a session may outlive its worker's thread (a
// handler still holding it is destroyed with the io_context, on the main
// thread), and its block must stay valid; that block then joins the free list
// of the thread that deletes it.
struct SessionSlab {
  static constexpr std::size_t kPerChunk = 64;
  FreeBlock* free = nullptr;
  void* take(std::size_t size) {
    if (free == nullptr) {
      auto* chunk = static_cast<unsigned char*>(::operator new(size * kPerChunk));
      for (std::size_t i = kPerChunk; i-- > 0;) give(chunk + i * size);
    }
    FreeBlock* b = free;
    free = b->next;
    return b;
  }
  void give(void* p) { free = new (p) FreeBlock{free}; }
};

SessionSlab& slab() {
  thread_local SessionSlab s;  // trivially destructible: nothing is freed at thread exit
  return s;
}
}  // namespace

void* Session::operator new(std::size_t size) {
  if constexpr (kPoolSessions) return slab().take(size);
  return ::operator new(size);
}

void Session::operator delete(void* p, std::size_t size) {
  if constexpr (kPoolSessions) {
    slab().give(p);
    return;
  }
  ::operator delete(p);
}

void Session::start(WorkerGateway& gateway, int fd, const sockaddr* peer, std::size_t listener) {
  core::Ref<Session> s(new Session(gateway, fd, peer, listener));
  if (!s->registered_) {
    // epoll refused the descriptor (out of memory or max_user_watches).
    s->worker_.stats().refused.add();
    s->log_refusal(503, "cannot watch the connection (epoll_ctl failed)");
    s->phase_ = Phase::done;
    s->finish();
    return;
  }
  if (s->phase_ == Phase::tls_handshake) {
    s->tls_accept();
  } else {
    s->read_request();
  }
}

Session::Session(WorkerGateway& gateway, int fd, const sockaddr* peer, std::size_t listener)
    : gateway_(gateway),
      worker_(gateway.worker()),
      runtime_(gateway.runtime()),
      id_(next_session_id(worker_.index())),
      client_addr_(format_peer(peer)),
      started_ms_(core::coarse_now_ms()) {
  sides_[Side::client].fd = fd;
  if (worker_.poller().add(fd, this, index(Side::client))) {
    registered_ = true;
    poll_ref_ = core::Ref<Session>(this);
  }
  hs_ = std::make_unique<Handshake>();
  hs_->listener = listener;
  worker_.attach(this);
  worker_.stats().connections_accepted.add();
  // Until a route is known, the top-level handshake timeout bounds it.
  close_deadline_ms_ = started_ms_ + runtime_->config->handshake_timeout.count();
  {
    const net::TlsServer* server = runtime_->listener_tls(listener);
    if (server != nullptr) {
      phase_ = Phase::tls_handshake;
      close_deadline_ms_ = started_ms_ + server->conf().handshake_timeout.count();
      sides_[Side::client].ssl = server->new_ssl();
      SideState& c = sides_[Side::client];
      if (c.ssl != nullptr && !net::attach_socket(c.ssl, c.fd, &c.tls_drained)) {
        SSL_free(c.ssl);
        c.ssl = nullptr;  // tls_accept reports it
      }
    }
  }
  arm_timer();
}

Session::~Session() {
  worker_.cancel_timer(this);
  for (auto& p : pumps_) release_buffer(p);
  free_tls();
  for (Side s : kSides) close_fd(s);
}

// Reads the next chunk of side s's bytes onto in (a head being collected,
// never more than max in all).
net::IoResult Session::read_head(Side s, std::string& in, std::size_t max) {
  const std::size_t old = in.size();
  const std::size_t want = next_read_size(in, max);
  in.resize(old + want);
  begin_io(s);
  const auto r = net::read_some(sides_[s].fd, sides_[s].ssl, in.data() + old, want);
  in.resize(old + r.n);
  return r;
}

void Session::read_request() {
  const std::size_t max = runtime_->config->max_header_bytes;
  for (;;) {
    const auto r = read_head(Side::client, hs_->in, max);
    if (r.would_block()) {
      wait_io(Side::client, r.status, &Session::read_request);
      return;
    }
    if (r.status != net::Io::done) {
      // The client left before finishing its request: nothing to answer.
      log_refusal(400, r.status == net::Io::eof ? "client closed during handshake" : net::describe(r));
      finish();
      return;
    }
    if (!on_request_bytes()) return;
  }
}

// False when the request was dealt with (routed or refused), true when more
// of it is needed.
bool Session::on_request_bytes() {
  const std::size_t max = runtime_->config->max_header_bytes;
  std::string err;
  switch (http::parse_request_head(hs_->in, max, hs_->req, &err)) {
    case http::ParseStatus::need_more: return true;
    case http::ParseStatus::too_large: refuse(431, "request header too large"); return false;
    case http::ParseStatus::bad: refuse(400, "malformed HTTP request: " + err); return false;
    case http::ParseStatus::complete: break;
  }
  route_and_connect();
  return false;
}

void Session::route_and_connect() {
  const http::Head& req = hs_->req;
  const auto match = match_route(*runtime_->config, req);
  if (!match) {
    refuse(404, "no route for this host and path");
    return;
  }
  compiled_ = &runtime_->routes[*match];
  route_ = compiled_->conf;
  hs_->route_index = *match;
  if (auto refusal = http::validate_upgrade_request(req)) {
    refuse(refusal.status, std::move(refusal.reason));
    return;
  }
  remask_ = route_->remask;
  if (compiled_->chain.needs_payload()) {
    // Its filters read message payloads, which Weir cannot inflate yet: no
    // extension is offered to the upstream (so none is negotiated), and an
    // upstream choosing one anyway is refused as not offered.
    auto& fields = hs_->req.fields;
    std::erase_if(fields, [](const http::Field& f) { return http::iequals(f.name, "sec-websocket-extensions"); });
  }
  if (!compiled_->chain.empty()) {
    filters_ = std::make_unique<filters::SessionFilters>(compiled_->chain);
    if ((compiled_->chain.hooks() & filters::kHandshake) != 0) {
      auto& ctx = hs_->filter_ctx.emplace(
          filters::HandshakeContext{req, client_ip(), hs_->client_cert, *route_, worker_});
      phase_ = Phase::filtering;
      auto self = core::Ref<Session>(this);
      auto v = filters_->run_handshake(ctx, [self](filters::HandshakeVerdict v) {
        self->on_filters_done(std::move(v));
      });
      // Pending: a filter resumes the session later; the handshake timeout
      // still runs, and the client is watched as during upstream setup.
      if (v.kind != filters::HandshakeVerdict::Kind::pending) on_filters_done(std::move(v));
      return;
    }
  }
  connect_upstream();
}

void Session::on_filters_done(filters::HandshakeVerdict v) {
  if (phase_ != Phase::filtering) return;
  if (v.kind == filters::HandshakeVerdict::Kind::refuse) {
    worker_.stats().filter_refusals.add();
    refuse(v.status, std::move(v.reason), &v.headers);
    return;
  }
  connect_upstream();
}

void Session::connect_upstream() {
  phase_ = Phase::connecting;
  close_deadline_ms_ = core::coarse_now_ms() + route_->timeouts.connect.count();
  arm_timer();
  hs_->first_upstream = gateway_.picker().first(hs_->route_index);
  hs_->attempts = 0;
  connect_next();
}

// While the upstream is being set up nothing reads the client; without a
// look at it, a client that gives up would hold its session until the connect
// or upstream handshake timeout. On each readable edge of the client in those
// phases (on_ready): EOF or an error ends the session at once; early frame
// bytes stay in the socket (they are relayed later).
void Session::check_client_during_setup() {
  char byte;
  const int fd = sides_[Side::client].fd;
  if (SSL* ssl = sides_[Side::client].ssl) {
    // TLS: a close_notify is bytes on the socket too, so ask OpenSSL.
    ERR_clear_error();
    std::size_t got = 0;
    const int rc = SSL_peek_ex(ssl, &byte, 1, &got);
    if (rc == 1) return;  // early frame bytes: relayed later
    const int err = SSL_get_error(ssl, rc);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return;  // a record without data
  } else {
    const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) return;
  }
  worker_.stats().setup_abandoned.add();
  log_refusal(499, "client closed during upstream setup");
  if (hs_->resolver) hs_->resolver->cancel();
  phase_ = Phase::done;
  finish();
}

// Tries the route's upstreams in round-robin order, each once, until one
// accepts the TCP connection.
void Session::connect_next() {
  auto& hs = *hs_;
  if (hs.endpoint_index < hs.endpoints.size()) {
    const tcp::endpoint ep = hs.endpoints[hs.endpoint_index++];
    close_fd(Side::upstream);
    const int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        // Our own limit, not the backend's fault: trying others would not help.
        worker_.stats().upstream_failures.add();
        upstream_failed(503, "out of file descriptors");
        return;
      }
      hs.last_error = std::strerror(errno);
      connect_next();
      return;
    }
    sides_[Side::upstream].fd = fd;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!worker_.poller().add(fd, this, index(Side::upstream))) {
      worker_.stats().upstream_failures.add();
      upstream_failed(503, "cannot watch the upstream socket: " + std::string(std::strerror(errno)));
      return;
    }
    if (::connect(fd, ep.data(), static_cast<socklen_t>(ep.size())) == 0) {
      on_upstream_connected();
    } else if (errno == EINPROGRESS) {
      wait_io(Side::upstream, net::Io::want_write, &Session::on_connect_ready);
    } else {
      hs.last_error = std::strerror(errno);
      connect_next();
    }
    return;
  }
  if (hs.attempts >= route_->upstreams.size()) {
    worker_.stats().upstream_failures.add();
    upstream_failed(502, "no upstream reachable: " + hs.last_error);
    return;
  }
  const auto& up = route_->upstreams[(hs.first_upstream + hs.attempts++) % route_->upstreams.size()];
  upstream_addr_ = up.text;
  hs.upstream = &up;
  hs.endpoints.clear();
  hs.endpoint_index = 0;
  if (up.kind == config::Upstream::Kind::echo) {
    hs.endpoints.emplace_back(asio::ip::address_v4::loopback(), gateway_.echo_port);
    connect_next();
    return;
  }
  error_code ec;
  const auto addr = asio::ip::make_address(up.host, ec);
  if (!ec) {
    hs.endpoints.emplace_back(addr, up.port);
    connect_next();
    return;
  }
  auto self = core::Ref<Session>(this);
  if (!hs.resolver) hs.resolver.emplace(worker_.io());
  // Asio resolves on a thread of its own: the loop must poll for the answer.
  worker_.poller().foreign_begin();
  hs.resolver->async_resolve(up.host, std::to_string(up.port),
                             [self](error_code ec, tcp::resolver::results_type results) {
                               self->worker_.poller().foreign_end();
                               if (self->phase_ != Phase::connecting) return;
                               auto& hs = *self->hs_;
                               if (ec) hs.last_error = "resolve " + std::string(self->upstream_addr_) + ": " + ec.message();
                               for (const auto& r : results) hs.endpoints.push_back(r.endpoint());
                               self->connect_next();
                             });
}

// The non-blocking connect finished (the socket became writable or failed).
void Session::on_connect_ready() {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(sides_[Side::upstream].fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    hs_->last_error = std::strerror(err);
    connect_next();
    return;
  }
  on_upstream_connected();
}

void Session::on_upstream_connected() {
  phase_ = Phase::upstream_handshake;
  close_deadline_ms_ = core::coarse_now_ms() + route_->timeouts.upstream_handshake.count();
  arm_timer();
  if (hs_->upstream != nullptr && hs_->upstream->tls) {
    const net::TlsClient* client = compiled_->tls.get();
    SSL* ssl = client != nullptr ? client->new_ssl(hs_->upstream->host, hs_->upstream->port) : nullptr;
    if (ssl == nullptr) {
      worker_.stats().upstream_failures.add();
      upstream_failed(502, "upstream TLS handshake failed: no TLS context");
      return;
    }
    sides_[Side::upstream].ssl = ssl;
    if (!net::attach_socket(ssl, sides_[Side::upstream].fd, &sides_[Side::upstream].tls_drained)) {
      worker_.stats().upstream_failures.add();
      upstream_failed(502, "upstream TLS handshake failed: out of memory");
      return;
    }
    tls_connect();
    return;
  }
  send_upstream_request();
}

void Session::send_upstream_request() {
  const auto extra = header_fields(hs_->filter_ctx ? &hs_->filter_ctx->upstream_headers : nullptr);
  hs_->out = http::build_upstream_request(hs_->req, {client_ip(), sides_[Side::client].ssl ? "wss" : "ws"}, extra);
  hs_->out_pos = 0;
  send_out(Side::upstream, &Session::on_upstream_request_sent);
}

void Session::on_upstream_request_sent() {
  if (!hs_->io_error.empty()) {
    worker_.stats().upstream_failures.add();
    upstream_failed(502, "upstream write failed: " + hs_->io_error);
    return;
  }
  read_upstream_response();
}

void Session::read_upstream_response() {
  for (;;) {
    const auto r = read_head(Side::upstream, hs_->up_in, kMaxUpstreamHead);
    if (r.would_block()) {
      wait_io(Side::upstream, r.status, &Session::read_upstream_response);
      return;
    }
    if (r.status != net::Io::done) {
      worker_.stats().upstream_failures.add();
      upstream_failed(502, "upstream closed during handshake: " + net::describe(r));
      return;
    }
    if (!on_upstream_response_bytes()) return;
  }
}

bool Session::on_upstream_response_bytes() {
  std::string err;
  switch (http::parse_response_head(hs_->up_in, kMaxUpstreamHead, hs_->resp, &err)) {
    case http::ParseStatus::need_more: return true;
    case http::ParseStatus::too_large:
      upstream_failed(502, "upstream response header too large");
      return false;
    case http::ParseStatus::bad:
      upstream_failed(502, "malformed upstream response: " + err);
      return false;
    case http::ParseStatus::complete: break;
  }
  auto verdict = http::check_upstream_response(hs_->resp, hs_->req);
  if (verdict.refusal) {
    worker_.stats().upstream_failures.add();
    upstream_failed(verdict.refusal.status, std::move(verdict.refusal.reason));
    return false;
  }
  hs_->allowed_rsv = verdict.allowed_rsv;
  const auto extra = header_fields(hs_->filter_ctx ? &hs_->filter_ctx->response_headers : nullptr);
  hs_->out = http::build_switching_response(hs_->req, hs_->resp, extra);
  hs_->out_pos = 0;
  phase_ = Phase::responding;
  send_out(Side::client, &Session::on_response_sent);
  return false;
}

void Session::on_response_sent() {
  if (!hs_->io_error.empty()) {
    record_end("client", ws::close_code::abnormal, "client lost before the upgrade completed: " + hs_->io_error);
    finish();
    return;
  }
  start_relay();
}


std::string_view Session::client_ip() const {
  std::string_view ip = client_addr_;
  if (!ip.empty() && ip.front() == '[') return ip.substr(1, ip.find(']') - 1);
  return ip.substr(0, ip.rfind(':'));
}

void Session::upstream_failed(unsigned status, std::string reason) {
  close_fd(Side::upstream);
  refuse(status, std::move(reason));
}

void Session::refuse(unsigned status, std::string reason, const std::vector<filters::Header>* headers) {
  worker_.stats().refused.add();
  log_refusal(status, reason);
  phase_ = Phase::done;
  if (filters_) filters_->cancel();
  hs_->out = http::error_response(status, reason, header_fields(headers));
  hs_->out_pos = 0;
  send_out(Side::client, &Session::on_refusal_sent);
}

void Session::on_refusal_sent() {
  // Half-close so the response is delivered before the connection goes.
  if (sides_[Side::client].ssl != nullptr && hs_->io_error.empty()) SSL_shutdown(sides_[Side::client].ssl);
  if (sides_[Side::client].fd >= 0) ::shutdown(sides_[Side::client].fd, SHUT_WR);
  finish();
}

void Session::log_refusal(unsigned status, std::string_view reason) {
  log::Line l(status >= 500 ? log::Level::warn : log::Level::info, "refused");
  l.unum("id", id_).str("client", client_addr_).num("status", status).str("reason", reason);
  if (hs_ && !hs_->req.target.empty()) l.str("path", hs_->req.target);
  if (route_) l.str("route", route_->name);
  if (!upstream_addr_.empty()) l.str("upstream", upstream_addr_);
  if (filters_ && !filters_->decided_by().empty()) l.str("filter", filters_->decided_by());
}

}  // namespace weir::proxy
