// Session: TLS handshakes on either side, and the readiness-driven I/O the
// handshake phase uses (plain or TLS alike): wait_io() and send_out().

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <sys/socket.h>

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/clock.h"
#include "net/stream.h"
#include "net/tls.h"
#include "observability/log.h"
#include "proxy/handshake_state.h"
#include "proxy/runtime.h"
#include "proxy/session.h"

namespace weir::proxy {

// A wait is a note: the client's socket is in the worker's poller for good,
// and on_ready() runs the step when the edge comes. An edge that came since
// the last attempt (Leg I/O uses them up) means: try again now. (The
// upstream leg waits on its own while it opens: upstream_leg.h.)
void Session::wait_io(net::Io want, Step next) {
  const bool write = want == net::Io::want_write;
  if (legs_[Side::client].io.take(write)) {
    (this->*next)();
    return;
  }
  hs_->wait_next = next;
  hs_->wait_write = write;
}

void Session::close_fd(Side s) { legs_[s].close(); }

void Session::send_out(Step next) {
  hs_->out_next = next;
  hs_->io_error.clear();
  continue_send();
}

void Session::continue_send() {
  auto& hs = *hs_;
  Leg& side = legs_[Side::client];
  while (hs.out_pos < hs.out.size()) {
    side.io.begin_io();  // TLS may read too
    const auto r = side.write(hs.out.data() + hs.out_pos, hs.out.size() - hs.out_pos);
    if (r.status == net::Io::done) {
      hs.out_pos += r.n;
      continue;
    }
    if (r.would_block()) {
      wait_io(r.status, &Session::continue_send);
      return;
    }
    hs.io_error = net::describe(r);
    break;
  }
  (this->*hs.out_next)();
}

// Client side. Before OpenSSL sees a byte, the first one is peeked: a TLS
// handshake record starts with 22; a letter means someone spoke plain HTTP to
// a TLS port, which gets a readable 400 rather than a TLS alert.
void Session::tls_accept() {
  Leg& c = legs_[Side::client];
  if (c.ssl == nullptr) {
    tls_failed("cannot create a TLS session (out of memory)");
    return;
  }
  if (!hs_->tls_started) {
    unsigned char first = 0;
    legs_[Side::client].io.begin_io();
    const ssize_t n = ::recv(c.fd, &first, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      wait_io(net::Io::want_read, &Session::tls_accept);
      return;
    }
    if (n <= 0) {
      tls_failed(n == 0 ? "connection closed before the TLS handshake" : std::strerror(errno));
      return;
    }
    if (first != 0x16) {
      if (first >= 'A' && first <= 'Z') {
        worker_.stats().tls_handshake_failures.add();
        // Read what was sent, so that closing does not reset the connection
        // before the client has read the answer.
        char sink[8192];
        for (int i = 0; i < 8 && ::recv(c.fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
        }
        free_tls();
        phase_ = Phase::request;
        refuse(400, "plain HTTP request sent to a TLS port");
        return;
      }
      tls_failed("not a TLS handshake (first byte " + std::to_string(first) + ")");
      return;
    }
    hs_->tls_started = true;
  }
  legs_[Side::client].io.begin_io();
  const auto r = net::handshake(c.ssl);
  if (r.would_block()) {
    wait_io(r.status, &Session::tls_accept);
    return;
  }
  if (r.status != net::Io::done) {
    std::string why = net::describe(r);
    const long verify = SSL_get_verify_result(c.ssl);
    if (verify != X509_V_OK) why += std::string(": ") + X509_verify_cert_error_string(verify);
    tls_failed(why);
    return;
  }
  auto& stats = worker_.stats();
  stats.tls_handshakes.add();
  if (SSL_session_reused(c.ssl)) stats.tls_resumed.add();
  hs_->tls_version = SSL_get_version(c.ssl);
  if (const char* sni = SSL_get_servername(c.ssl, TLSEXT_NAMETYPE_host_name)) hs_->sni = sni;
  hs_->client_cert = net::peer_identity(c.ssl);
  phase_ = Phase::request;
  close_deadline_ms_ = core::coarse_now_ms() + runtime_->config->handshake_timeout.count();
  arm_timer();
  read_request();
}

void Session::tls_failed(std::string_view reason) {
  worker_.stats().tls_handshake_failures.add();
  log::Line l(log::Level::info, "tls.handshake_failed");
  l.unum("id", id_).str("client", client_addr_).str("reason", reason);
  if (SSL* ssl = legs_[Side::client].ssl) {
    if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) l.str("sni", sni);
  }
  phase_ = Phase::done;
  finish();
}

void Session::free_tls() {
  for (auto& leg : legs_) {
    if (leg.ssl != nullptr) {
      SSL_free(leg.ssl);
      leg.ssl = nullptr;
    }
  }
}

}  // namespace weir::proxy
