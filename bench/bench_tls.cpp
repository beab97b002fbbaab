#include "bench_tls.h"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace weir::bench {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

std::string openssl_errors() {
  std::string out;
  char buf[256];
  while (const unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL error queued" : out;
}

bool is_ip_literal(const std::string& name) {
  error_code ec;
  asio::ip::make_address(name, ec);
  return !ec;
}

long bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;  // writes are buffered by TlsStream; nothing else applies
}

// The BIO type: memory on both sides, owned by the TlsStream in BIO_get_data.
BIO_METHOD* bio_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weir-bench");
    BIO_meth_set_read(bm, &TlsStream::bio_read);
    BIO_meth_set_write(bm, &TlsStream::bio_write);
    BIO_meth_set_ctrl(bm, &bio_ctrl);
    return bm;
  }();
  return m;
}

}  // namespace

TlsContext::TlsContext(const std::string& ca, bool idle)
    // A whole record (16 KiB + 256 + header) must fit; more lets one read take several.
    : read_buffer_(idle ? 17 * 1024 : 64 * 1024) {
  ctx_ = SSL_CTX_new(TLS_client_method());
  if (!ctx_) throw std::runtime_error("SSL_CTX_new: " + openssl_errors());
  SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
  static const unsigned char alpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx_, alpn, sizeof alpn - 1);
  // Sessions are kept per connection (TlsStream::take_session), not in OpenSSL's cache.
  SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx_, &TlsStream::on_new_session);
  if (idle) SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS);
  if (!ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx_, ca.c_str(), nullptr) != 1) {
      const std::string why = openssl_errors();
      SSL_CTX_free(ctx_);
      throw std::runtime_error(ca + ": " + why);
    }
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    verify_ = true;
  } else {
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
  }
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsStream::TlsStream(const TlsContext& ctx, tcp::socket& sock, const std::string& server_name,
                     SSL_SESSION* resume)
    : sock_(sock), in_(new char[ctx.read_buffer()]), in_cap_(ctx.read_buffer()) {
  ssl_ = SSL_new(ctx.native());
  BIO* bio = BIO_new(bio_method());
  if (!ssl_ || !bio) throw std::runtime_error("SSL_new: " + openssl_errors());
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);  // one reference, owned by ssl_
  SSL_set_app_data(ssl_, this);
  SSL_set_connect_state(ssl_);
  if (is_ip_literal(server_name)) {
    // RFC 6066: no IP literals in SNI. Verify the address instead.
    if (ctx.verify()) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), server_name.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl_, server_name.c_str());
    if (ctx.verify()) SSL_set1_host(ssl_, server_name.c_str());
  }
  if (resume) {
    // A copy: OpenSSL marks a TLS 1.3 session used for resumption as spent (single
    // use, RFC 8446 C.4). When the server sent no newer ticket, the same one is
    // offered again; the tickets count shows which servers renew.
    SSL_SESSION* copy = SSL_SESSION_dup(resume);
    SSL_set_session(ssl_, copy ? copy : resume);
    SSL_SESSION_free(copy);
  }
  sock_.non_blocking(true);  // close(): one send attempt, never a blocking one
}

TlsStream::~TlsStream() { SSL_free(ssl_); }

int TlsStream::on_new_session(SSL* ssl, SSL_SESSION* s) {
  auto* self = static_cast<TlsStream*>(SSL_get_app_data(ssl));
  if (!self) return 0;
  self->session_.reset(s);  // keep the newest: TLS 1.3 tickets are meant for one use
  ++self->tickets_;
  return 1;
}

int TlsStream::bio_read(BIO* b, char* out, int len) {
  auto* self = static_cast<TlsStream*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  const std::size_t k = std::min<std::size_t>(self->in_len_ - self->in_pos_, static_cast<std::size_t>(len));
  if (k == 0) {
    BIO_set_retry_read(b);
    return -1;
  }
  std::memcpy(out, self->in_.get() + self->in_pos_, k);
  self->in_pos_ += k;
  return static_cast<int>(k);
}

int TlsStream::bio_write(BIO* b, const char* in, int len) {
  auto* self = static_cast<TlsStream*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  self->out_.append(in, static_cast<std::size_t>(len));
  return len;
}

template <class F>
void TlsStream::receive(F&& then) {
  // Keep a partial record at the front; the rest of the buffer takes the next read.
  if (in_pos_ == in_len_) {
    in_pos_ = in_len_ = 0;
  } else if (in_pos_ > 0) {
    std::memmove(in_.get(), in_.get() + in_pos_, in_len_ - in_pos_);
    in_len_ -= in_pos_;
    in_pos_ = 0;
  }
  sock_.async_read_some(asio::buffer(in_.get() + in_len_, in_cap_ - in_len_),
                        [self = shared_from_this(), then = std::forward<F>(then)](error_code ec, std::size_t k) mutable {
                          if (!ec && self->closed_) ec = asio::error::operation_aborted;
                          if (!ec) self->in_len_ += k;
                          then(ec);
                        });
}

void TlsStream::send() {
  if (sending_) return;  // the running write picks up out_ when it finishes
  if (out_.empty()) {
    if (wh_) {
      auto h = std::move(wh_);
      wh_ = nullptr;
      h({}, wn_);  // only reached from a write completion: already asynchronous
    }
    return;
  }
  sending_ = true;
  wire_.swap(out_);
  out_.clear();
  asio::async_write(sock_, asio::buffer(wire_), [self = shared_from_this()](error_code ec, std::size_t) {
    self->sending_ = false;
    if (!ec && self->closed_) ec = asio::error::operation_aborted;
    if (ec) {
      self->broken_ = true;
      if (auto h = std::move(self->wh_)) {
        self->wh_ = nullptr;
        h(ec, 0);
      }
      return;  // a pending read or handshake sees the failure on its own socket read
    }
    self->send();
  });
}

void TlsStream::deliver(IoHandler h, error_code ec, std::size_t n, bool from_io) {
  if (from_io) return h(ec, n);
  asio::post(sock_.get_executor(), [h = std::move(h), ec, n]() mutable { h(ec, n); });
}

error_code TlsStream::fail(const char* what, int ssl_error) {
  if (ssl_error == SSL_ERROR_ZERO_RETURN) {
    // The peer's close_notify: a clean end. close() still sends ours, which also
    // keeps the session resumable (OpenSSL drops the session of a connection
    // freed without a shutdown).
    ERR_clear_error();
    return asio::error::eof;
  }
  broken_ = true;
  // Protocol failures (bad certificate, no shared version...) are what a user
  // needs to see: print the first one, count the rest as errors.
  static std::atomic<bool> said{false};
  std::string why = openssl_errors();
  const long v = SSL_get_verify_result(ssl_);
  if (v != X509_V_OK) why += std::string(" (certificate: ") + X509_verify_cert_error_string(v) + ")";
  if (!said.exchange(true))
    std::fprintf(stderr, "weir-bench: %s failed: %s (further TLS errors are only counted)\n", what, why.c_str());
  return boost::system::errc::make_error_code(boost::system::errc::protocol_error);
}

void TlsStream::async_handshake(Handler h) {
  hh_ = std::move(h);
  step_handshake(false);
}

void TlsStream::step_handshake(bool from_io) {
  auto done = [this, from_io](error_code ec) {
    auto h = std::move(hh_);
    hh_ = nullptr;
    deliver([h = std::move(h)](error_code ec, std::size_t) { h(ec); }, ec, 0, from_io);
  };
  if (closed_) return done(asio::error::operation_aborted);
  ERR_clear_error();
  const int r = SSL_do_handshake(ssl_);
  const int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_, r);
  send();  // ClientHello, or the client's Finished
  if (r == 1) return done({});
  if (e != SSL_ERROR_WANT_READ) return done(fail("TLS handshake", e));
  receive([self = shared_from_this()](error_code ec) {
    if (!ec) return self->step_handshake(true);
    auto h = std::move(self->hh_);
    self->hh_ = nullptr;
    h(ec);
  });
}

void TlsStream::async_read_some(void* p, std::size_t n, IoHandler h) {
  read_into(static_cast<char*>(p), n, std::move(h), false);
}

void TlsStream::read_into(char* p, std::size_t n, IoHandler h, bool from_io) {
  if (closed_) return deliver(std::move(h), asio::error::operation_aborted, 0, from_io);
  ERR_clear_error();
  std::size_t total = 0;
  int e = SSL_ERROR_NONE;
  // Decrypt every whole record already read; WANT_READ costs no system call here.
  while (total < n) {
    std::size_t got = 0;
    const int r = SSL_read_ex(ssl_, p + total, n - total, &got);
    if (r != 1) {
      e = SSL_get_error(ssl_, r);
      break;
    }
    total += got;
  }
  if (!out_.empty()) send();  // an alert or key update reply, rarely
  if (total > 0) return deliver(std::move(h), {}, total, from_io);  // an error, if any, comes next call
  if (e != SSL_ERROR_WANT_READ) return deliver(std::move(h), fail("TLS read", e), 0, from_io);
  receive([self = shared_from_this(), p, n, h = std::move(h)](error_code ec) mutable {
    if (ec) return h(ec, 0);
    self->read_into(p, n, std::move(h), true);
  });
}

void TlsStream::async_write(const void* p, std::size_t n, IoHandler h) {
  if (closed_ || broken_) return deliver(std::move(h), asio::error::operation_aborted, 0, false);
  ERR_clear_error();
  std::size_t done = 0;
  while (done < n) {  // the BIO takes everything: no WANT_WRITE
    std::size_t w = 0;
    const int r = SSL_write_ex(ssl_, static_cast<const char*>(p) + done, n - done, &w);
    if (r != 1) return deliver(std::move(h), fail("TLS write", SSL_get_error(ssl_, r)), done, false);
    done += w;
  }
  if (out_.empty() && !sending_) return deliver(std::move(h), {}, n, false);  // n == 0
  wh_ = std::move(h);
  wn_ = n;
  send();
}

void TlsStream::close() {
  if (closed_) return;
  closed_ = true;
  if (broken_ || !SSL_is_init_finished(ssl_)) return;
  ERR_clear_error();
  SSL_shutdown(ssl_);
  ERR_clear_error();
  if (!sending_ && !out_.empty()) {
    error_code ignored;
    sock_.send(asio::buffer(out_), 0, ignored);  // non-blocking socket: sent now or never
  }
}

std::string TlsStream::describe() const {
  std::string s = SSL_get_version(ssl_);
  s += ' ';
  s += SSL_get_cipher_name(ssl_);
  if (const int g = SSL_get_negotiated_group(ssl_)) {
    const char* name = OBJ_nid2sn(g);
    s += ' ';
    s += name ? name : "group?";
  }
  const unsigned char* alpn = nullptr;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(ssl_, &alpn, &alpn_len);
  s += " alpn=";
  s += alpn_len ? std::string(reinterpret_cast<const char*>(alpn), alpn_len) : "none";
  if (const X509* cert = SSL_get0_peer_certificate(ssl_)) {
    if (const EVP_PKEY* k = X509_get0_pubkey(cert))
      s += std::string(" cert=") + EVP_PKEY_get0_type_name(k) + "-" + std::to_string(EVP_PKEY_get_bits(k));
  }
  return s;
}

}  // namespace weir::bench
