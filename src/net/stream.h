#pragma once
// Non-blocking reads and writes on a connected socket, in the clear or
// through OpenSSL: the one place the relay and the handshake code touch
// bytes on the wire. Readiness-based: a call that cannot make progress says
// which readiness to wait for (TLS may need to write to read, or read to
// write), and the caller retries with the same arguments after the wait.

#include <cstddef>
#include <string>

struct ssl_st;

namespace weir::net {

enum class Io : unsigned char { done, want_read, want_write, eof, error };

struct IoResult {
  std::size_t n = 0;
  Io status = Io::done;
  int err = 0;               // errno (plain) or 0
  unsigned long tls_err = 0;  // OpenSSL error code (TLS), 0 if none
  bool would_block() const { return status == Io::want_read || status == Io::want_write; }
};

// Reads up to len bytes.
IoResult read_some(int fd, ssl_st* ssl, void* buf, std::size_t len);
// Writes a, then b (b may be empty). Plain sockets take both in one sendmsg;
// TLS writes a first and b only once a is complete.
IoResult write_some(int fd, ssl_st* ssl, const void* a, std::size_t alen, const void* b = nullptr,
                    std::size_t blen = 0);
// Binds ssl to the socket fd through Weir's own socket BIO, which notes in
// *drained whether the last recv() came back short (the kernel had no more),
// so that a reader can stop without the extra recv() that finds nothing.
// The note is only as fresh as that recv(): the owner must clear *drained on
// every readable edge, since a TLS read served from OpenSSL's buffer does
// not reach the socket and cannot tell that more bytes arrived there.
bool attach_socket(ssl_st* ssl, int fd, bool* drained);
// True when a TLS reader may wait for readiness: OpenSSL holds no
// undelivered bytes and the socket was drained by its last recv().
bool tls_drained(ssl_st* ssl, const bool* drained);
// Drives a TLS handshake one step: done when complete.
IoResult handshake(ssl_st* ssl);
// What went wrong, for logs.
std::string describe(const IoResult& r);

}  // namespace weir::net
