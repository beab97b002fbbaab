// Session, from accept to the 101: read and check the client's request, pick a
// route and an upstream, connect, do the client-side handshake with the
// backend, and answer the client. Every refusal is an HTTP status, logged.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>

#include <fmt/format.h>

#include <sys/socket.h>

#include <cerrno>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/clock.h"
#include "net/stream.h"
#include "net/tls.h"
#include "http/head.h"
#include "http/upgrade.h"
#include "observability/log.h"
#include "proxy/route_match.h"
#include "proxy/handshake_state.h"
#include "proxy/session.h"

namespace weir::proxy {

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
}  // namespace

void Session::start(core::Worker& worker, tcp::socket client, std::size_t listener) {
  core::Ref<Session> s(new Session(worker, std::move(client), listener));
  if (s->phase_ == Phase::tls_handshake) {
    s->tls_accept();
  } else {
    s->read_request();
  }
}

Session::Session(core::Worker& worker, tcp::socket client, std::size_t listener)
    : worker_(worker),
      config_(worker.config()),
      sides_{SideState(worker.io()), SideState(worker.io())},
      timer_(worker.io()),
      id_(next_session_id(worker.index())),
      started_ms_(core::coarse_now_ms()) {
  sides_[kClient].sock = std::move(client);
  error_code ec;
  const auto ep = sides_[kClient].sock.remote_endpoint(ec);
  if (!ec) {
    client_addr_ = ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                                        : fmt::format("{}:{}", ep.address().to_string(), ep.port());
  }
  sides_[kClient].sock.set_option(tcp::no_delay(true), ec);
  sides_[kClient].sock.non_blocking(true, ec);
  hs_ = std::make_unique<Handshake>(worker.io());
  hs_->listener = listener;
  worker_.attach(this);
  worker_.stats().connections_accepted.add();
  // Until a route is known, the top-level defaults (first route's, which start
  // from them) bound the handshake.
  const auto& t = config_->routes.front().timeouts;
  close_deadline_ms_ = started_ms_ + t.handshake.count();
  if (const auto& tls = worker.tls(); tls && !tls->empty()) {
    tls_ = tls;
    const net::TlsServer* server = listener < tls->listeners.size() ? tls->listeners[listener].get() : nullptr;
    if (server != nullptr) {
      phase_ = Phase::tls_handshake;
      close_deadline_ms_ = started_ms_ + server->conf().handshake_timeout.count();
      sides_[kClient].ssl = server->new_ssl();
      SideState& c = sides_[kClient];
      if (c.ssl != nullptr && !net::attach_socket(c.ssl, c.sock.native_handle(), &c.tls_drained)) {
        SSL_free(c.ssl);
        c.ssl = nullptr;  // tls_accept reports it
      }
    }
  }
  arm_timer();
}

Session::~Session() {
  for (auto& p : pumps_) release_buffer(p);
  free_tls();
}

void Session::read_request() {
  const std::size_t max = config_->routes.front().limits.max_header_bytes;
  auto& in = hs_->in;
  for (;;) {
    const std::size_t old = in.size();
    const std::size_t want = next_read_size(in, max);
    in.resize(old + want);
    const auto r = net::read_some(sides_[kClient].sock.native_handle(), sides_[kClient].ssl, in.data() + old, want);
    in.resize(old + r.n);
    if (r.would_block()) {
      wait_io(kClient, r.status, &Session::read_request);
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
  const std::size_t max = config_->routes.front().limits.max_header_bytes;
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
  const auto match = match_route(*config_, req);
  if (!match) {
    refuse(404, "no route for this host and path");
    return;
  }
  route_ = &config_->routes[*match];
  hs_->route_index = *match;
  if (auto refusal = http::validate_upgrade_request(req)) {
    refuse(refusal.status, std::move(refusal.reason));
    return;
  }
  const filters::HandshakeContext ctx{req, client_ip(), *route_, hs_->client_cert};
  if (auto v = worker_.chain(*match).run_handshake(ctx); v.status != 0) {
    refuse(v.status, std::move(v.reason));
    return;
  }
  remask_ = route_->remask;
  phase_ = Phase::connecting;
  close_deadline_ms_ = core::coarse_now_ms() + route_->timeouts.connect.count();
  arm_timer();
  hs_->first_upstream = worker_.picker().first(hs_->route_index);
  hs_->attempts = 0;
  watch_client_during_setup();
  connect_next();
}

// While the upstream is being set up nothing reads the client; without a
// watch, a client that gives up would hold its session until the connect or
// upstream handshake timeout. One readiness wait: EOF or an error ends the
// session at once; early frame bytes just end the watch (they are relayed later).
void Session::watch_client_during_setup() {
  auto self = core::Ref<Session>(this);
  sides_[kClient].sock.async_wait(tcp::socket::wait_read, [self](error_code ec) {
    if (ec || (self->phase_ != Phase::connecting && self->phase_ != Phase::upstream_handshake)) return;
    char byte;
    if (SSL* ssl = self->sides_[kClient].ssl) {
      // TLS: a close_notify is bytes on the socket too, so ask OpenSSL.
      ERR_clear_error();
      std::size_t got = 0;
      const int rc = SSL_peek_ex(ssl, &byte, 1, &got);
      if (rc == 1) return;  // early frame bytes: relayed later
      const int err = SSL_get_error(ssl, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        self->watch_client_during_setup();  // a record without data (e.g. a ticket ack)
        return;
      }
    } else {
      const ssize_t n = ::recv(self->sides_[kClient].sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) return;
    }
    self->worker_.stats().setup_abandoned.add();
    self->log_refusal(499, "client closed during upstream setup");
    error_code ignored;
    self->sides_[kUpstream].sock.close(ignored);
    self->hs_->resolver.cancel();
    self->phase_ = Phase::done;
    self->finish();
  });
}

// Tries the route's upstreams in round-robin order, each once, until one
// accepts the TCP connection.
void Session::connect_next() {
  auto& hs = *hs_;
  if (hs.endpoint_index < hs.endpoints.size()) {
    auto self = core::Ref<Session>(this);
    const tcp::endpoint ep = hs.endpoints[hs.endpoint_index++];
    auto& sock = sides_[kUpstream].sock;
    error_code ignored;
    sock.close(ignored);
    sock.async_connect(ep, [self](error_code ec) {
      if (self->phase_ != Phase::connecting) return;
      if (ec == asio::error::no_descriptors || ec.value() == ENFILE) {
        // Our own limit, not the backend's fault: trying others would not help.
        self->worker_.stats().upstream_failures.add();
        self->upstream_failed(503, "out of file descriptors");
        return;
      }
      if (ec) {
        self->hs_->last_error = ec.message();
        self->connect_next();
        return;
      }
      self->on_upstream_connected();
    });
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
    hs.endpoints.emplace_back(asio::ip::address_v4::loopback(), worker_.echo_port);
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
  hs.resolver.async_resolve(up.host, std::to_string(up.port),
                            [self](error_code ec, tcp::resolver::results_type results) {
                              if (self->phase_ != Phase::connecting) return;
                              auto& hs = *self->hs_;
                              if (ec) hs.last_error = "resolve " + self->upstream_addr_ + ": " + ec.message();
                              for (const auto& r : results) hs.endpoints.push_back(r.endpoint());
                              self->connect_next();
                            });
}

void Session::on_upstream_connected() {
  auto& up = sides_[kUpstream].sock;
  error_code ec;
  up.set_option(tcp::no_delay(true), ec);
  up.non_blocking(true, ec);
  phase_ = Phase::upstream_handshake;
  close_deadline_ms_ = core::coarse_now_ms() + route_->timeouts.upstream_handshake.count();
  arm_timer();
  if (hs_->upstream != nullptr && hs_->upstream->tls) {
    const net::TlsClient* client = tls_ && hs_->route_index < tls_->routes.size()
                                       ? tls_->routes[hs_->route_index].get()
                                       : nullptr;
    SSL* ssl = client != nullptr ? client->new_ssl(hs_->upstream->host, hs_->upstream->port) : nullptr;
    if (ssl == nullptr) {
      worker_.stats().upstream_failures.add();
      upstream_failed(502, "upstream TLS handshake failed: no TLS context");
      return;
    }
    sides_[kUpstream].ssl = ssl;
    if (!net::attach_socket(ssl, up.native_handle(), &sides_[kUpstream].tls_drained)) {
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
  hs_->out = http::build_upstream_request(hs_->req, {client_ip(), sides_[kClient].ssl ? "wss" : "ws"});
  hs_->out_pos = 0;
  send_out(kUpstream, &Session::on_upstream_request_sent);
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
  auto& in = hs_->up_in;
  for (;;) {
    const std::size_t old = in.size();
    const std::size_t want = next_read_size(in, kMaxUpstreamHead);
    in.resize(old + want);
    const auto r = net::read_some(sides_[kUpstream].sock.native_handle(), sides_[kUpstream].ssl,
                                  in.data() + old, want);
    in.resize(old + r.n);
    if (r.would_block()) {
      wait_io(kUpstream, r.status, &Session::read_upstream_response);
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
  hs_->out = http::build_switching_response(hs_->req, hs_->resp);
  hs_->out_pos = 0;
  phase_ = Phase::responding;
  send_out(kClient, &Session::on_response_sent);
  return false;
}

void Session::on_response_sent() {
  if (!hs_->io_error.empty()) {
    closed_by_ = "client";
    close_code_ = ws::close_code::abnormal;
    close_reason_ = "client lost before the upgrade completed: " + hs_->io_error;
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
  error_code ignored;
  sides_[kUpstream].sock.close(ignored);
  refuse(status, std::move(reason));
}

void Session::refuse(unsigned status, std::string reason) {
  worker_.stats().refused.add();
  log_refusal(status, reason);
  phase_ = Phase::done;
  hs_->out = http::error_response(status, reason);
  hs_->out_pos = 0;
  send_out(kClient, &Session::on_refusal_sent);
}

void Session::on_refusal_sent() {
  // Half-close so the response is delivered before the connection goes.
  if (sides_[kClient].ssl != nullptr && hs_->io_error.empty()) SSL_shutdown(sides_[kClient].ssl);
  error_code ignored;
  sides_[kClient].sock.shutdown(tcp::socket::shutdown_send, ignored);
  finish();
}

void Session::log_refusal(unsigned status, std::string_view reason) {
  log::Line l(status >= 500 ? log::Level::warn : log::Level::info, "refused");
  l.unum("id", id_).str("client", client_addr_).num("status", status).str("reason", reason);
  if (hs_ && !hs_->req.target.empty()) l.str("path", hs_->req.target);
  if (route_) l.str("route", route_->name);
  if (!upstream_addr_.empty()) l.str("upstream", upstream_addr_);
}

}  // namespace weir::proxy
