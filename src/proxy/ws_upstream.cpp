// The WebSocket upstream kind: tries the members of the route's group in
// the session's Selection order (upstream/group.h; each of a member's
// addresses in turn), then TLS for wss://, the upgrade request (the
// client's, with forwarding headers and the filters' additions) and the
// upstream's 101, checked against what the client asked for. A refused or
// timed-out connect, a failed TLS handshake, an upstream that closes, sends
// garbage or answers 5xx is retried on another member (group `retries`),
// and reported to the group's passive health; a 4xx answer is the backend's
// decision and goes to the client. On a route whose backend handshake is
// generic, the member the policy picked first serves from its pre-warmed
// pool when it has an idle connection (upstream/prewarm.h): no connect and
// no upgrade exchange at all; a miss connects to that member as usual.

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "core/clock.h"
#include "core/worker.h"
#include "http/upgrade.h"
#include "net/stream.h"
#include "observability/log.h"
#include "net/tls.h"
#include "proxy/leg.h"
#include "proxy/runtime.h"
#include "proxy/upstream_leg.h"
#include "upstream/group.h"
#include "upstream/group_metrics.h"
#include "upstream/prewarm.h"

namespace weir::proxy {

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr std::size_t kMaxUpstreamHead = 16 * 1024;

class WsUpstream final : public UpstreamLeg {
 public:
  explicit WsUpstream(const UpstreamContext& ctx) : ctx_(ctx) {}
  ~WsUpstream() override { *alive_ = false; }

  void open(const UpstreamOpen& what) override {
    what_ = what;
    if (ctx_.prewarm != nullptr && pick_next()) {
      if (take_pooled()) return;
      start_member();  // a miss: this member, connected as usual
      return;
    }
    connect_next();
  }

  void on_ready() override {
    if (wait_next_ == nullptr || done_) return;
    if (!(wait_write_ ? ctx_.leg.io.tx : ctx_.leg.io.rx)) return;
    const Step next = wait_next_;
    wait_next_ = nullptr;
    (this->*next)();
  }

  void cancel() override {
    done_ = true;
    wait_next_ = nullptr;
    if (resolver_) resolver_->cancel();
  }

  bool retry_elsewhere(std::string_view why) override {
    if (done_) return false;
    last_error_ = std::string(why);
    report(false);
    wait_next_ = nullptr;
    if (resolver_) resolver_->cancel();
    endpoints_.clear();
    endpoint_index_ = 0;
    ctx_.leg.close();
    if (!pick_next()) return false;
    start_member();
    return true;
  }

 private:
  using Step = void (WsUpstream::*)();

  void wait(net::Io want, Step next) {
    const bool write = want == net::Io::want_write;
    if (ctx_.leg.io.take(write)) {
      (this->*next)();
      return;
    }
    wait_next_ = next;
    wait_write_ = write;
  }

  // Reports once; nothing of this object may be used after it (the owner
  // may delete it).
  void finish(UpstreamOpened outcome) {
    done_ = true;
    ctx_.owner.upstream_opened(std::move(outcome));
  }
  // metric: the reason label of weir_upstream_connect_failures_total for the
  // upstream being tried; null when it is not the upstream's failure (ours,
  // or counted already per attempt).
  void fail(unsigned status, std::string reason, const char* metric) {
    if (metric != nullptr) {
      last_error_ = reason;
      count_failure(metric);
    }
    finish_failed(status, std::move(reason));
  }
  // The member being tried failed past TCP (TLS, the upgrade exchange):
  // counted, reported, and retried on another member when one is left.
  void fail_member(std::string reason, const char* metric) {
    last_error_ = reason;
    count_failure(metric);
    report(false);
    ctx_.leg.close();
    resp_ = {};
    in_.clear();
    if (pick_next()) {
      start_member();
      return;
    }
    finish_failed(502, std::move(reason));
  }
  void finish_failed(unsigned status, std::string reason) {
    ctx_.leg.close();
    UpstreamOpened o;
    o.status = status;
    o.reason = std::move(reason);
    finish(std::move(o));
  }

  // One attempt at the upstream being tried failed: counted and logged
  // (the client's refusal, if it comes to one, is logged on its own).
  void count_failure(std::string_view reason) {
    const std::string_view up = upstream_ ? std::string_view(upstream_->text) : "";
    count_upstream_failure(ctx_.worker.cells(), ctx_.route.conf->name, up, reason);
    log::Line(log::Level::warn, "upstream.fail")
        .str("route", ctx_.route.conf->name)
        .str("upstream", up)
        .str("reason", reason)
        .str("error", last_error_);
  }
  // A connect to one address failed with errno err.
  void connect_failed(int err) {
    last_error_ = std::strerror(err);
    count_failure(err == ECONNREFUSED ? "refused"
                  : err == ETIMEDOUT ? "timeout"
                  : (err == EHOSTUNREACH || err == ENETUNREACH) ? "unreachable"
                                                                  : "other");
    connect_next();
  }
  // Passive health: the member being tried worked, or failed.
  void report(bool ok) {
    if (member_ == upstream::Group::npos) return;
    const auto now = core::coarse_now_ms();
    if (ctx_.route.group->report(member_, ok, now)) {
      upstream::count_group_event(ctx_.worker.cells(), upstream::GroupEvent::ejection, ctx_.route.group->label(),
                                  upstream_->text);
    }
  }
  // The next member from the selection into member_/upstream_; false when none is left.
  bool pick_next() {
    if (member_ != upstream::Group::npos) {
      upstream::count_group_event(ctx_.worker.cells(), upstream::GroupEvent::retry, ctx_.route.group->label(),
                                  upstream_->text);
    }
    member_ = ctx_.selection.next(core::coarse_now_ms());
    if (member_ == upstream::Group::npos) return false;
    upstream_ = &ctx_.route.conf->upstreams[member_];
    ctx_.owner.upstream_chosen(member_);
    return true;
  }
  void start_member();
  // The pool of the member just picked had an idle connection: it is this
  // session's upstream now (reported as open). False on a miss.
  bool take_pooled() {
    pooled_ = ctx_.prewarm->take(*ctx_.route.group, member_);
    if (!pooled_) return false;
    ctx_.leg.fd = pooled_->fd;
    pooled_->fd = -1;
    if (pooled_->ssl != nullptr) {
      // wss://: its TLS session, handshake done; its socket BIO now notes
      // this leg's drained flag.
      ctx_.leg.ssl = pooled_->ssl;
      pooled_->ssl = nullptr;
      if (!net::attach_socket(ctx_.leg.ssl, ctx_.leg.fd, &ctx_.leg.tls_drained)) {
        fail(502, "upstream TLS: out of memory", "tls");
        return true;
      }
    }
    if (!ctx_.worker.poller().add(ctx_.leg.fd, &ctx_.target, ctx_.tag)) {
      fail(503, "cannot watch the upstream socket: " + std::string(std::strerror(errno)), nullptr);
      return true;
    }
    // Its 101 answered our generic request, not the client's: nothing was
    // offered, so no extension (RSV bit) and no subprotocol came back.
    UpstreamOpened o;
    o.response = &pooled_->response;
    o.early = pooled_->early;
    finish(std::move(o));
    return true;
  }
  // TCP (and TLS) is up: the connect duration, once per session.
  void established() {
    if (connect_start_us_ == 0 || upstream_ == nullptr) return;
    const auto& ups = ctx_.route.metrics.upstreams;
    const auto i = static_cast<std::size_t>(upstream_ - ctx_.route.conf->upstreams.data());
    if (i < ups.size()) {
      obs::observe(ctx_.worker.cells(), ups[i].connect_duration,
                   static_cast<std::uint64_t>(core::now_us() - connect_start_us_));
    }
    connect_start_us_ = 0;
  }

  void connect_next();
  void on_connect_ready();
  void on_connected();
  void tls_connect();
  void send_request();
  void continue_send();
  void read_response();
  bool on_response_bytes();

  UpstreamContext ctx_;
  UpstreamOpen what_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for the resolver's answer
  std::optional<tcp::resolver> resolver_;  // only for upstreams given by name
  std::vector<tcp::endpoint> endpoints_;
  std::size_t endpoint_index_ = 0;
  std::string last_error_;
  std::int64_t connect_start_us_ = 0;  // of the attempt in progress (0: none, or measured)
  const config::Upstream* upstream_ = nullptr;  // being tried
  std::size_t member_ = upstream::Group::npos;  // its index in the group
  std::string out_;                             // the upgrade request
  std::size_t out_pos_ = 0;
  std::string in_;                              // the response head (+ early frames)
  http::Head resp_;
  std::optional<ws::DeflateParams> deflate_;   // agreed for Weir's own offer
  std::unique_ptr<upstream::Pooled> pooled_;    // taken from the pool (its 101 and early bytes)
  Step wait_next_ = nullptr;
  bool wait_write_ = false;
  bool done_ = false;
};

void WsUpstream::connect_next() {
  if (endpoint_index_ < endpoints_.size()) {
    const tcp::endpoint ep = endpoints_[endpoint_index_++];
    ctx_.leg.close();
    const int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        // Our own limit, not the backend's fault: trying others would not help.
        fail(503, "out of file descriptors", nullptr);
        return;
      }
      connect_failed(errno);
      return;
    }
    ctx_.leg.fd = fd;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!ctx_.worker.poller().add(fd, &ctx_.target, ctx_.tag)) {
      fail(503, "cannot watch the upstream socket: " + std::string(std::strerror(errno)), nullptr);
      return;
    }
    connect_start_us_ = core::now_us();
    if (::connect(fd, ep.data(), static_cast<socklen_t>(ep.size())) == 0) {
      on_connected();
    } else if (errno == EINPROGRESS) {
      wait(net::Io::want_write, &WsUpstream::on_connect_ready);
    } else {
      connect_failed(errno);
    }
    return;
  }
  // Every address of the member being tried failed (or it had none).
  if (member_ != upstream::Group::npos) report(false);
  if (!pick_next()) {
    if (ctx_.selection.none_available()) {
      UpstreamOpened o;
      o.status = 503;
      o.reason = "no healthy upstream in group " + ctx_.route.group->label();
      o.retry_after_s = 1;
      ctx_.leg.close();
      finish(std::move(o));
      return;
    }
    fail(502, last_error_.empty() ? "no upstream reachable" : "no upstream reachable: " + last_error_, nullptr);
    return;
  }
  start_member();
}

// Resolves the member in upstream_ (if it is a name) and connects to its addresses.
void WsUpstream::start_member() {
  const auto& up = *upstream_;
  endpoints_.clear();
  endpoint_index_ = 0;
  if (up.kind == config::Upstream::Kind::echo) {
    endpoints_.emplace_back(asio::ip::address_v4::loopback(), ctx_.echo_port);
    connect_next();
    return;
  }
  error_code ec;
  // A member made from one address of a name (resolve_interval) connects
  // there; TLS still names the host.
  const auto addr = asio::ip::make_address(up.address.empty() ? up.host : up.address, ec);
  if (!ec) {
    endpoints_.emplace_back(addr, up.port);
    connect_next();
    return;
  }
  if (!resolver_) resolver_.emplace(ctx_.worker.io());
  // Asio resolves on a thread of its own: the loop must poll for the answer.
  ctx_.worker.poller().foreign_begin();
  resolver_->async_resolve(
      up.host, std::to_string(up.port),
      [hold = ctx_.owner.hold(), alive = alive_, worker = &ctx_.worker, self = this](
          error_code ec, tcp::resolver::results_type results) {
        worker->poller().foreign_end();
        if (!*alive || self->done_) return;
        if (ec) {
          self->last_error_ = "resolve " + self->upstream_->text + ": " + ec.message();
          self->count_failure("dns");
        }
        for (const auto& r : results) self->endpoints_.push_back(r.endpoint());
        self->connect_next();
      });
}

// The non-blocking connect finished (the socket became writable or failed).
void WsUpstream::on_connect_ready() {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(ctx_.leg.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) {
    connect_failed(err);
    return;
  }
  on_connected();
}

void WsUpstream::on_connected() {
  ctx_.owner.upstream_connected();
  if (upstream_ != nullptr && upstream_->tls) {
    const net::TlsClient* client = ctx_.route.tls.get();
    SSL* ssl = client != nullptr ? client->new_ssl(upstream_->host, upstream_->port) : nullptr;
    if (ssl == nullptr) {
      fail(502, "upstream TLS handshake failed: no TLS context", "tls");
      return;
    }
    ctx_.leg.ssl = ssl;
    if (!net::attach_socket(ssl, ctx_.leg.fd, &ctx_.leg.tls_drained)) {
      fail(502, "upstream TLS handshake failed: out of memory", "tls");
      return;
    }
    tls_connect();
    return;
  }
  send_request();
}

// wss://: verification was set up by TlsClient::new_ssl.
void WsUpstream::tls_connect() {
  SSL* ssl = ctx_.leg.ssl;
  ctx_.leg.io.begin_io();
  const auto r = net::handshake(ssl);
  if (r.would_block()) {
    wait(r.status, &WsUpstream::tls_connect);
    return;
  }
  if (r.status != net::Io::done) {
    std::string why = net::describe(r);
    const long verify = SSL_get_verify_result(ssl);
    const bool verifying = ctx_.route.tls && ctx_.route.tls->verify();
    if (verifying && verify != X509_V_OK) why = std::string("certificate: ") + X509_verify_cert_error_string(verify);
    fail_member("upstream TLS handshake failed: " + why, "tls");
    return;
  }
  send_request();
}

void WsUpstream::send_request() {
  established();
  out_ = http::build_upstream_request(*what_.request, {what_.client_ip, what_.client_tls ? "wss" : "ws"},
                                      what_.extra_headers);
  out_pos_ = 0;
  continue_send();
}

void WsUpstream::continue_send() {
  while (out_pos_ < out_.size()) {
    ctx_.leg.io.begin_io();  // TLS may read too
    const auto r = ctx_.leg.write(out_.data() + out_pos_, out_.size() - out_pos_);
    if (r.status == net::Io::done) {
      out_pos_ += r.n;
      continue;
    }
    if (r.would_block()) {
      wait(r.status, &WsUpstream::continue_send);
      return;
    }
    fail_member("upstream write failed: " + net::describe(r), "handshake");
    return;
  }
  std::string().swap(out_);
  read_response();
}

void WsUpstream::read_response() {
  for (;;) {
    const auto r = ctx_.leg.read_head(in_, kMaxUpstreamHead);
    if (r.would_block()) {
      wait(r.status, &WsUpstream::read_response);
      return;
    }
    if (r.status != net::Io::done) {
      fail_member("upstream closed during handshake: " + net::describe(r), "handshake");
      return;
    }
    if (!on_response_bytes()) return;
  }
}

bool WsUpstream::on_response_bytes() {
  std::string err;
  switch (http::parse_response_head(in_, kMaxUpstreamHead, resp_, &err)) {
    case http::ParseStatus::need_more: return true;
    case http::ParseStatus::too_large:
      fail_member("upstream response header too large", "handshake");
      return false;
    case http::ParseStatus::bad:
      fail_member("malformed upstream response: " + err, "handshake");
      return false;
    case http::ParseStatus::complete: break;
  }
  auto verdict = http::check_upstream_response(resp_, *what_.request);
  if (verdict.refusal) {
    // 5xx: this member is in trouble, another may not be. Anything else is
    // the backend's answer to this request (or a protocol mismatch).
    if (resp_.status >= 500 && resp_.status <= 599) {
      fail_member(std::move(verdict.refusal.reason), "handshake");
    } else {
      report(true);
      fail(verdict.refusal.status, std::move(verdict.refusal.reason), "handshake");
    }
    return false;
  }
  if (what_.deflate != nullptr) {
    // Weir's own permessage-deflate offer (an inspecting route): an answer
    // it cannot honour is a failed upgrade.
    std::vector<std::string_view> values;
    for (const auto& f : resp_.fields)
      if (http::iequals(f.name, "sec-websocket-extensions")) values.push_back(f.value);
    std::string why;
    if (!ws::check_response(values, *what_.deflate, deflate_, why)) {
      report(true);
      fail(502, std::move(why), "handshake");
      return false;
    }
  }
  report(true);
  UpstreamOpened o;
  o.deflate = deflate_;
  o.response = &resp_;
  o.early = std::string_view(in_).substr(resp_.size);
  o.allowed_rsv = verdict.allowed_rsv;
  finish(std::move(o));
  return false;
}

}  // namespace

std::unique_ptr<UpstreamLeg> make_upstream_leg(const UpstreamContext& ctx) {
  // Every upstream a route names speaks WebSocket today (ws://, wss://, echo).
  return std::make_unique<WsUpstream>(ctx);
}

}  // namespace weir::proxy
