// The WebSocket upstream kind: tries the route's upstreams in the picker's
// order, each once (each of its addresses in turn), until one accepts TCP;
// then TLS for wss://, the upgrade request (the client's, with forwarding
// headers and the filters' additions) and the upstream's 101, checked
// against what the client asked for.

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

#include "core/worker.h"
#include "http/upgrade.h"
#include "net/stream.h"
#include "net/tls.h"
#include "proxy/leg.h"
#include "proxy/runtime.h"
#include "proxy/upstream_leg.h"

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
  void fail(unsigned status, std::string reason, bool counted = true) {
    if (counted) ctx_.worker.stats().upstream_failures.add();
    ctx_.leg.close();
    UpstreamOpened o;
    o.status = status;
    o.reason = std::move(reason);
    finish(std::move(o));
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
  std::size_t attempts_ = 0;
  std::string last_error_;
  const config::Upstream* upstream_ = nullptr;  // being tried
  std::string out_;                             // the upgrade request
  std::size_t out_pos_ = 0;
  std::string in_;                              // the response head (+ early frames)
  http::Head resp_;
  Step wait_next_ = nullptr;
  bool wait_write_ = false;
  bool done_ = false;
};

void WsUpstream::connect_next() {
  const auto& route = *ctx_.route.conf;
  if (endpoint_index_ < endpoints_.size()) {
    const tcp::endpoint ep = endpoints_[endpoint_index_++];
    ctx_.leg.close();
    const int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        // Our own limit, not the backend's fault: trying others would not help.
        fail(503, "out of file descriptors");
        return;
      }
      last_error_ = std::strerror(errno);
      connect_next();
      return;
    }
    ctx_.leg.fd = fd;
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!ctx_.worker.poller().add(fd, &ctx_.target, ctx_.tag)) {
      fail(503, "cannot watch the upstream socket: " + std::string(std::strerror(errno)));
      return;
    }
    if (::connect(fd, ep.data(), static_cast<socklen_t>(ep.size())) == 0) {
      on_connected();
    } else if (errno == EINPROGRESS) {
      wait(net::Io::want_write, &WsUpstream::on_connect_ready);
    } else {
      last_error_ = std::strerror(errno);
      connect_next();
    }
    return;
  }
  if (attempts_ >= route.upstreams.size()) {
    fail(502, "no upstream reachable: " + last_error_);
    return;
  }
  const auto& up = route.upstreams[(ctx_.first + attempts_++) % route.upstreams.size()];
  upstream_ = &up;
  ctx_.owner.upstream_chosen(up);
  endpoints_.clear();
  endpoint_index_ = 0;
  if (up.kind == config::Upstream::Kind::echo) {
    endpoints_.emplace_back(asio::ip::address_v4::loopback(), ctx_.echo_port);
    connect_next();
    return;
  }
  error_code ec;
  const auto addr = asio::ip::make_address(up.host, ec);
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
        if (ec) self->last_error_ = "resolve " + self->upstream_->text + ": " + ec.message();
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
    last_error_ = std::strerror(err);
    connect_next();
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
      fail(502, "upstream TLS handshake failed: no TLS context");
      return;
    }
    ctx_.leg.ssl = ssl;
    if (!net::attach_socket(ssl, ctx_.leg.fd, &ctx_.leg.tls_drained)) {
      fail(502, "upstream TLS handshake failed: out of memory");
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
    fail(502, "upstream TLS handshake failed: " + why);
    return;
  }
  send_request();
}

void WsUpstream::send_request() {
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
    fail(502, "upstream write failed: " + net::describe(r));
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
      fail(502, "upstream closed during handshake: " + net::describe(r));
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
      fail(502, "upstream response header too large", false);
      return false;
    case http::ParseStatus::bad:
      fail(502, "malformed upstream response: " + err, false);
      return false;
    case http::ParseStatus::complete: break;
  }
  auto verdict = http::check_upstream_response(resp_, *what_.request);
  if (verdict.refusal) {
    fail(verdict.refusal.status, std::move(verdict.refusal.reason));
    return false;
  }
  UpstreamOpened o;
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
