// Session, from accept to the 101: read and check the client's request, pick a
// route, run its handshake filters, open the upstream leg (its kind connects
// and upgrades: upstream_leg.h), and answer the client. Every refusal is an
// HTTP status, logged.

#include <fmt/format.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/clock.h"
#include "net/cidr.h"
#include "net/proxy_protocol.h"
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
#include "state/counters.h"
#include "filters/ip_policy/ip_policy.h"
#include "filters/session_filters.h"

namespace weir::proxy {




namespace {

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
    s->log_refusal(503, "cannot watch the connection (epoll_ctl failed)");
    s->phase_ = Phase::done;
    s->finish();
    return;
  }
  if (const std::uint32_t max = s->runtime_->config->max_pending_handshakes_per_ip; max > 0) {
    // Slowloris: many half-sent requests from one address. Counted across
    // workers; a connection over the limit is closed unanswered.
    auto key = std::make_unique<std::string>("pending|" + std::string(s->client_ip()));
    if (!state::Counters::local().acquire(*key, max)) {
      log::Line(log::Level::info, "limit.hit")
          .unum("id", s->id_)
          .str("client", s->client_addr_)
          .str("limit", "pending_handshakes")
          .str("per", "ip")
          .str("key", s->client_ip())
          .str("action", "close");
      s->log_refusal(429, "too many pending handshakes from this address", "pending_handshakes");
      s->phase_ = Phase::done;
      s->finish();
      return;
    }
    s->pending_key_ = std::move(key);
  }
  const config::Listener* lc =
      listener < s->runtime_->config->listeners.size() ? &s->runtime_->config->listeners[listener] : nullptr;
  if (lc != nullptr && lc->proxy_protocol) {
    const auto peer = net::parse_ip(s->client_ip());
    if (peer && net::any_contains(s->runtime_->config->trusted_proxies, *peer)) {
      s->hs_->tls_after_proxy = s->phase_ == Phase::tls_handshake;
      s->phase_ = Phase::proxy_header;
      s->read_proxy_header();
      return;
    }
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
      started_ms_(core::coarse_now_ms()),
      started_us_(core::now_us()) {
  legs_[Side::client].fd = fd;
  if (worker_.poller().add(fd, this, index(Side::client))) {
    registered_ = true;
    poll_ref_ = core::Ref<Session>(this);
  }
  hs_ = std::make_unique<Handshake>();
  hs_->listener = listener;
  worker_.attach(this);
  worker_.stats().connections_accepted.add();
  if (listener < runtime_->listener_metrics.size()) worker_.cells()[runtime_->listener_metrics[listener].accepted.at].add();
  // Until a route is known, the top-level handshake timeout bounds it.
  close_deadline_ms_ = started_ms_ + runtime_->config->handshake_timeout.count();
  {
    const net::TlsServer* server = runtime_->listener_tls(listener);
    if (server != nullptr) {
      phase_ = Phase::tls_handshake;
      close_deadline_ms_ = started_ms_ + server->conf().handshake_timeout.count();
      legs_[Side::client].ssl = server->new_ssl();
      Leg& c = legs_[Side::client];
      if (c.ssl != nullptr && !net::attach_socket(c.ssl, c.fd, &c.tls_drained)) {
        SSL_free(c.ssl);
        c.ssl = nullptr;  // tls_accept reports it
      }
    }
  }
  arm_timer();
}

void Session::release_pending_slot() {
  if (!pending_key_) return;
  state::Counters::local().release(*pending_key_);
  pending_key_.reset();
}

Session::~Session() {
  release_pending_slot();
  worker_.cancel_timer(this);
  for (auto& p : pumps_) release_buffer(p);
  free_tls();
  for (Side s : kSides) close_fd(s);
}

// The header is peeked at, parsed, and only then taken off the socket, to
// the byte: what follows it (a TLS ClientHello, the HTTP request) stays for
// the next reader.
void Session::read_proxy_header() {
  std::uint8_t buf[net::kMaxProxyHeader];
  const int fd = legs_[Side::client].fd;
  legs_[Side::client].io.begin_io();  // if this blocks, only new bytes end the wait
  const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    wait_io(net::Io::want_read, &Session::read_proxy_header);
    return;
  }
  if (n <= 0) {
    log_refusal(400, n == 0 ? "client closed before its PROXY header" : std::strerror(errno), "client_gone");
    phase_ = Phase::done;
    finish();
    return;
  }
  const net::ProxyHeader h = net::parse_proxy_header(buf, static_cast<std::size_t>(n));
  if (h.status == net::ProxyHeader::Status::need_more) {
    if (static_cast<std::size_t>(n) == sizeof buf) {
      log_refusal(400, "PROXY protocol header too long", "proxy_protocol");
      phase_ = Phase::done;
      finish();
      return;
    }
    wait_io(net::Io::want_read, &Session::read_proxy_header);
    return;
  }
  if (h.status == net::ProxyHeader::Status::invalid) {
    // No HTTP answer: what the proxy sent cannot be trusted to be HTTP.
    log_refusal(400, h.error, "proxy_protocol");
    phase_ = Phase::done;
    finish();
    return;
  }
  const ssize_t taken = ::recv(fd, buf, h.size, MSG_DONTWAIT);
  if (taken != static_cast<ssize_t>(h.size)) {
    log_refusal(400, "PROXY protocol header could not be consumed", "proxy_protocol");
    phase_ = Phase::done;
    finish();
    return;
  }
  if (!h.local) hs_->proxied_ip = h.source;
  after_proxy_header();
}

void Session::after_proxy_header() {
  if (hs_->tls_after_proxy) {
    phase_ = Phase::tls_handshake;
    tls_accept();
  } else {
    phase_ = Phase::request;
    read_request();
  }
}

void Session::read_request() {
  const std::size_t max = runtime_->config->max_header_bytes;
  for (;;) {
    const auto r = legs_[Side::client].read_head(hs_->in, max);
    if (r.would_block()) {
      wait_io(r.status, &Session::read_request);
      return;
    }
    if (r.status != net::Io::done) {
      // The client left before finishing its request: nothing to answer.
      log_refusal(400, r.status == net::Io::eof ? "client closed during handshake" : net::describe(r), "client_gone");
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

void Session::take_trace() {
  auto& fields = hs_->req.fields;
  std::optional<obs::TraceParent> given;
  int seen = 0;
  for (const auto& f : fields)
    if (http::iequals(f.name, "traceparent") && ++seen == 1) given = obs::parse_traceparent(f.value);
  if (seen > 1) given.reset();  // two traceparents: neither is trusted
  // Weir's hop replaces traceparent; tracestate goes on with it only when
  // the trace does (a new trace starts with no state).
  std::erase_if(fields, [keep_state = given.has_value()](const http::Field& f) {
    return http::iequals(f.name, "traceparent") || (!keep_state && http::iequals(f.name, "tracestate"));
  });
  if (given) {
    trace_ = *given;
  } else {
    trace_.trace = obs::new_trace_id();
    trace_.flags = 0;
  }
}

void Session::route_and_connect() {
  take_trace();
  {
    std::vector<std::string_view> xff;
    for (const auto& f : hs_->req.fields)
      if (http::iequals(f.name, "x-forwarded-for")) xff.push_back(f.value);
    // A trusted proxy's PROXY header names the client; X-Forwarded-For is
    // then walked from there (only if that address is trusted too).
    const std::string_view peer = hs_->proxied_ip.empty() ? client_ip() : std::string_view(hs_->proxied_ip);
    hs_->client_ip = net::client_from_forwarded(peer, runtime_->config->trusted_proxies, xff);
  }
  if (const auto& policy = runtime_->config->listeners[hs_->listener].ip_policy) {
    if (!static_cast<const filters::IpPolicyFilter&>(*policy).allows(hs_->client_ip)) {
      count_filter(worker_.cells(), "", "ip_policy", /*refusal=*/true);
      refuse(403, "client address not allowed", nullptr, "ip_policy");
      return;
    }
  }
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
    // Its filters read message payloads: Weir terminates the client's
    // extensions. permessage-deflate (when the route's compression is on)
    // is negotiated on each leg on its own (ws/deflate.h): answered to the
    // client here, offered to the backend as Weir's; nothing else is
    // offered, so an upstream choosing another is refused as not offered.
    auto& fields = hs_->req.fields;
    const ws::DeflateSettings& comp = route_->compression;
    if (comp.enabled) {
      std::vector<std::string_view> offers;
      for (const auto& f : fields)
        if (http::iequals(f.name, "sec-websocket-extensions")) offers.push_back(f.value);
      if (auto a = ws::accept_offer(offers, comp)) {
        hs_->deflate_client = a->params;
        hs_->deflate_response = std::move(a->response);
      }
    }
    std::erase_if(fields, [](const http::Field& f) { return http::iequals(f.name, "sec-websocket-extensions"); });
    if (comp.enabled) {
      hs_->deflate_offer = ws::client_offer(comp);
      fields.push_back({"Sec-WebSocket-Extensions", hs_->deflate_offer});
    }
  }
  if (!compiled_->chain.empty()) {
    filters_ = std::make_unique<filters::SessionFilters>(compiled_->chain, worker_.cells());
    if ((compiled_->chain.hooks() & filters::kHandshake) != 0) {
      auto& ctx = hs_->filter_ctx.emplace(
          filters::HandshakeContext{req, hs_->client_ip, hs_->client_cert.subject, *route_, worker_});
      ctx.client_cert_names = &hs_->client_cert;
      hs_->trace_hex = trace_.trace.hex();
      ctx.session_id = id_;
      ctx.trace_id = hs_->trace_hex;
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
    count_filter(worker_.cells(), route_->name, filters_->decided_by(), /*refusal=*/true);
    refuse(v.status, std::move(v.reason), &v.headers);
    return;
  }
  if (hs_->filter_ctx) apply_filter_changes(*hs_->filter_ctx);
  connect_upstream();
}

// What the handshake filters changed: the request the upstream gets (the
// rewritten fields and target point into ctx, which lives until the relay
// starts), the session's deadline, its user.
void Session::apply_filter_changes(filters::HandshakeContext& ctx) {
  auto& fields = hs_->req.fields;
  for (const auto& h : ctx.rewrite_headers) {
    std::erase_if(fields, [&h](const http::Field& f) { return http::iequals(f.name, h.name); });
    if (!h.value.empty()) fields.push_back({h.name, h.value});
  }
  if (!ctx.rewrite_target.empty()) hs_->req.target = ctx.rewrite_target;
  if (ctx.deadline_ms > 0) deadline_ms_ = ctx.deadline_ms;
  if (!ctx.user.empty() || !ctx.token_id.empty())
    identity_ = std::make_unique<Identity>(Identity{std::move(ctx.user), std::move(ctx.token_id)});
}

// While the upstream is being set up nothing reads the client; without a
// look at it, a client that gives up would hold its session until the connect
// or upstream handshake timeout. On each readable edge of the client in those
// phases (on_ready): EOF or an error ends the session at once; early frame
// bytes stay in the socket (they are relayed later).
void Session::check_client_during_setup() {
  char byte;
  const int fd = legs_[Side::client].fd;
  if (SSL* ssl = legs_[Side::client].ssl) {
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
  log_refusal(499, "client closed during upstream setup");
  if (hs_->upstream) hs_->upstream->cancel();
  phase_ = Phase::done;
  finish();
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
  if (hs_->upstream) hs_->upstream->cancel();
  close_fd(Side::upstream);
  refuse(status, std::move(reason));
}

void Session::refuse(unsigned status, std::string reason, const std::vector<filters::Header>* headers,
                     std::string_view label) {
  log_refusal(status, reason, label);
  phase_ = Phase::done;
  if (filters_) filters_->cancel();
  hs_->out = http::error_response(status, reason, header_fields(headers));
  hs_->out_pos = 0;
  send_out(&Session::on_refusal_sent);
}

void Session::on_refusal_sent() {
  // Half-close so the response is delivered before the connection goes.
  if (legs_[Side::client].ssl != nullptr && hs_->io_error.empty()) SSL_shutdown(legs_[Side::client].ssl);
  if (legs_[Side::client].fd >= 0) ::shutdown(legs_[Side::client].fd, SHUT_WR);
  finish();
}

void Session::log_refusal(unsigned status, std::string_view reason, std::string_view label) {
  if (label.empty()) {
    label = filters_ && !filters_->decided_by().empty() ? filters_->decided_by() : refusal_reason(status);
  }
  count_handshake_failure(worker_.cells(), route_ ? std::string_view(route_->name) : std::string_view(), status,
                          label);
  log::Line l(status >= 500 ? log::Level::warn : log::Level::info, "handshake.reject");
  l.unum("id", id_).str("client", client_addr_).num("status", status).str("reason", reason);
  if (!trace_.trace.empty()) l.str("trace_id", trace_.trace.hex());
  if (hs_ && !hs_->client_ip.empty() && hs_->client_ip != client_ip()) l.str("client_ip", hs_->client_ip);
  if (hs_ && !hs_->req.target.empty()) l.str("path", hs_->req.target);
  if (route_) l.str("route", route_->name);
  if (!upstream_addr_.empty()) l.str("upstream", upstream_addr_);
  if (filters_ && !filters_->decided_by().empty()) l.str("filter", filters_->decided_by());
}

}  // namespace weir::proxy
