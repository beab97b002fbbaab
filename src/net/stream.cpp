#include "net/stream.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

namespace weir::net {

namespace {

IoResult plain_error(ssize_t n) {
  IoResult r;
  if (n == 0) {
    r.status = Io::eof;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
    r.status = Io::want_read;  // the caller maps it to the direction it did
  } else {
    r.status = Io::error;
    r.err = errno;
  }
  return r;
}

IoResult tls_result(SSL* ssl, int rc, std::size_t n) {
  IoResult r;
  if (rc == 1) {
    r.n = n;
    return r;
  }
  switch (SSL_get_error(ssl, rc)) {
    case SSL_ERROR_WANT_READ: r.status = Io::want_read; break;
    case SSL_ERROR_WANT_WRITE: r.status = Io::want_write; break;
    case SSL_ERROR_ZERO_RETURN: r.status = Io::eof; break;  // close_notify
    case SSL_ERROR_SYSCALL:
      r.err = errno;
      r.tls_err = ERR_peek_last_error();
      r.status = Io::error;
      break;
    default:
      r.status = Io::error;
      r.tls_err = ERR_peek_last_error();
      break;
  }
  if (r.status == Io::error && r.tls_err == 0 && r.err == 0) r.status = Io::eof;
  return r;
}

struct SockBio {
  int fd;
  bool* drained;
};

int bio_read(BIO* b, char* buf, int len) {
  auto* s = static_cast<SockBio*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  const ssize_t n = ::recv(s->fd, buf, static_cast<std::size_t>(len), 0);
  if (n > 0) {
    *s->drained = n < len;
    return static_cast<int>(n);
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    *s->drained = true;
    BIO_set_retry_read(b);
  }
  return static_cast<int>(n);
}

int bio_write(BIO* b, const char* buf, int len) {
  auto* s = static_cast<SockBio*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  const ssize_t n = ::send(s->fd, buf, static_cast<std::size_t>(len), MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(b);
  return static_cast<int>(n);
}

long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int bio_destroy(BIO* b) {
  delete static_cast<SockBio*>(BIO_get_data(b));
  BIO_set_data(b, nullptr);
  return 1;
}

BIO_METHOD* sock_bio_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weir socket");
    BIO_meth_set_read(meth, bio_read);
    BIO_meth_set_write(meth, bio_write);
    BIO_meth_set_ctrl(meth, bio_ctrl);
    BIO_meth_set_destroy(meth, bio_destroy);
    return meth;
  }();
  return m;
}

}  // namespace

bool attach_socket(SSL* ssl, int fd, bool* drained) {
  BIO* b = BIO_new(sock_bio_method());
  if (b == nullptr) return false;
  BIO_set_data(b, new SockBio{fd, drained});
  BIO_set_init(b, 1);
  SSL_set_bio(ssl, b, b);  // the SSL owns it
  return true;
}

bool tls_drained(SSL* ssl, const bool* drained) { return *drained && !SSL_has_pending(ssl); }

IoResult read_some(int fd, SSL* ssl, void* buf, std::size_t len) {
  if (ssl == nullptr) {
    const ssize_t n = ::recv(fd, buf, len, 0);
    if (n > 0) return IoResult{static_cast<std::size_t>(n)};
    return plain_error(n);
  }
  ERR_clear_error();
  errno = 0;
  std::size_t n = 0;
  const int rc = SSL_read_ex(ssl, buf, len, &n);
  return tls_result(ssl, rc, n);
}

IoResult write_some(int fd, SSL* ssl, const void* a, std::size_t alen, const void* b, std::size_t blen) {
  if (ssl == nullptr) {
    iovec iov[2] = {{const_cast<void*>(a), alen}, {const_cast<void*>(b), blen}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = blen ? 2 : 1;
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return IoResult{static_cast<std::size_t>(n)};
    IoResult r = plain_error(-1);
    if (r.status == Io::want_read) r.status = Io::want_write;
    return r;
  }
  if (alen == 0) {
    a = b;
    alen = blen;
  }
  ERR_clear_error();
  errno = 0;
  std::size_t n = 0;
  const int rc = SSL_write_ex(ssl, a, alen, &n);
  IoResult r = tls_result(ssl, rc, n);
  if (r.status == Io::eof) {
    r.status = Io::error;
    r.err = EPIPE;
  }
  return r;
}

IoResult handshake(SSL* ssl) {
  ERR_clear_error();
  errno = 0;
  const int rc = SSL_do_handshake(ssl);
  IoResult r = tls_result(ssl, rc, 0);
  return r;
}

std::string describe(const IoResult& r) {
  if (r.status == Io::eof) return "connection closed";
  if (r.tls_err != 0) {
    const char* reason = ERR_reason_error_string(r.tls_err);
    if (reason != nullptr) return reason;
    char buf[256];
    ERR_error_string_n(r.tls_err, buf, sizeof buf);
    return buf;
  }
  if (r.err != 0) return std::strerror(r.err);
  return "unknown error";
}

}  // namespace weir::net
