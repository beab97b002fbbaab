#pragma once
// weir-bench TLS client (wss://): OpenSSL 3 used directly on the connection's
// event loop. OpenSSL sees only memory (a BIO over two buffers); the socket I/O
// is Asio's, exactly as on the plain path (same reads, writes and epoll use).
// Used only with --tls: the plain path never touches this code.

#include <boost/asio/ip/tcp.hpp>

#include <openssl/ssl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace weir::bench {

struct SessionFree {
  void operator()(SSL_SESSION* s) const { SSL_SESSION_free(s); }
};
using SessionPtr = std::unique_ptr<SSL_SESSION, SessionFree>;

// One client SSL_CTX per run, shared by every connection and thread.
class TlsContext {
 public:
  // ca: PEM file to verify the server against; empty = no verification.
  // idle: many idle connections (hold): small buffers, OpenSSL's freed when idle.
  // Throws std::runtime_error when the CA file cannot be loaded.
  TlsContext(const std::string& ca, bool idle);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* native() const { return ctx_; }
  bool verify() const { return verify_; }
  std::size_t read_buffer() const { return read_buffer_; }

 private:
  SSL_CTX* ctx_ = nullptr;
  bool verify_ = false;
  std::size_t read_buffer_;
};

// One TLS connection over a connected tcp::socket owned by the caller. At most
// one read and one write outstanding (as Conn does). Completions run through the
// socket's executor, never inside the call. Pending operations keep the stream
// alive; after close() they complete with operation_aborted.
class TlsStream : public std::enable_shared_from_this<TlsStream> {
 public:
  using IoHandler = std::function<void(boost::system::error_code, std::size_t)>;
  using Handler = std::function<void(boost::system::error_code)>;

  // server_name: SNI and the name verified (an IP literal: no SNI, the address is
  // verified). resume: a session from an earlier connection to offer, or null.
  TlsStream(const TlsContext& ctx, boost::asio::ip::tcp::socket& sock, const std::string& server_name,
            SSL_SESSION* resume);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  void async_handshake(Handler h);
  void async_read_some(void* p, std::size_t n, IoHandler h);  // at least 1 byte, or an error
  void async_write(const void* p, std::size_t n, IoHandler h);   // all n bytes sent, or an error
  // Queues close_notify and tries one non-blocking send of it (the peer's is not
  // awaited); the caller closes the socket next.
  void close();

  bool resumed() const { return SSL_session_reused(ssl_) == 1; }
  unsigned tickets() const { return tickets_; }              // session tickets received so far
  SessionPtr take_session() { return std::move(session_); }  // newest ticket, or null
  // "TLSv1.3 TLS_AES_256_GCM_SHA384 X25519 alpn=http/1.1 cert=EC-256" after the handshake.
  std::string describe() const;

  // OpenSSL callbacks (SSL_CTX new-session callback; the BIO's read/write).
  static int on_new_session(SSL* ssl, SSL_SESSION* s);
  static int bio_read(BIO* b, char* out, int len);
  static int bio_write(BIO* b, const char* in, int len);

 private:
  void step_handshake(bool from_io);
  void read_into(char* p, std::size_t n, IoHandler h, bool from_io);
  template <class F>
  void receive(F&& then);  // more ciphertext from the socket into in_
  void send();             // ciphertext in out_ to the socket, one write at a time
  void deliver(IoHandler h, boost::system::error_code ec, std::size_t n, bool from_io);
  boost::system::error_code fail(const char* what, int ssl_error);

  boost::asio::ip::tcp::socket& sock_;
  SSL* ssl_ = nullptr;
  std::unique_ptr<char[]> in_;       // ciphertext read, [in_pos_, in_len_) not yet given to OpenSSL
  std::size_t in_cap_, in_pos_ = 0, in_len_ = 0;
  std::string out_, wire_;           // ciphertext from OpenSSL; the part being written
  bool sending_ = false;
  Handler hh_;                       // pending handshake
  IoHandler wh_;                     // pending write: called once its ciphertext is sent
  std::size_t wn_ = 0;
  SessionPtr session_;
  unsigned tickets_ = 0;
  bool closed_ = false;
  bool broken_ = false;              // fatal error seen: no close_notify
};

}  // namespace weir::bench
