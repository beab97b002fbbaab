#include "net/stream.h"

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

}  // namespace

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
