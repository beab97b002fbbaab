#pragma once
// TLS contexts (OpenSSL), built from the config at start and on SIGHUP:
// a TlsServer per TLS listener (certificates chosen by SNI, client
// certificates, tickets, OCSP) and a TlsClient per route with wss://
// upstreams (verification, client certificate, session reuse). A TlsSet is
// one immutable snapshot of all of them; workers hold it through a
// shared_ptr, a reload swaps it, and SSL objects keep their own references,
// so established connections never notice. OpenSSL types are only
// forward-declared here.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "net/cert_identity.h"

struct ssl_st;
struct ssl_ctx_st;
struct ssl_session_st;

namespace weir::net {

class TicketKeys;

class TlsServer {
 public:
  // Reads every file; throws config::ConfigError at the entry's position.
  TlsServer(const config::ListenerTls& conf, const std::string& source, std::size_t listener_index);
  ~TlsServer();
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;

  // A new server-side SSL (nullptr when OpenSSL is out of memory).
  ssl_st* new_ssl() const;
  const config::ListenerTls& conf() const { return conf_; }
  std::size_t certificates() const { return certs_.size(); }

  // The certificate index SNI name `host` selects, or -1 for none (then the
  // default, index 0, is served unless strict_sni). Exposed for unit tests.
  int select(std::string_view host) const;

 private:
  struct Cert {
    ssl_ctx_st* ctx = nullptr;  // owned (freed even when the constructor throws)
    std::string ocsp_der;
    ~Cert();
  };
  static int on_servername(ssl_st* ssl, int* alert, void* arg);
  static int on_status(ssl_st* ssl, void* arg);

  config::ListenerTls conf_;
  std::vector<std::unique_ptr<Cert>> certs_;
  std::map<std::string, int, std::less<>> names_;  // "a.example.com" or "*.example.com" -> cert
};

class TlsClient {
 public:
  TlsClient(const config::UpstreamTls& conf, const std::string& source);
  ~TlsClient();
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  // A client-side SSL for upstream host:port: SNI, host name check (unless
  // verify is off) and the last session this worker process had with it.
  ssl_st* new_ssl(const std::string& host, std::uint16_t port) const;
  bool verify() const { return conf_.verify; }

 private:
  struct Slot;  // last session per host:port
  static int on_new_session(ssl_st* ssl, ssl_session_st* session);

  struct CtxFree {
    void operator()(ssl_ctx_st* ctx) const;
  };
  config::UpstreamTls conf_;
  std::unique_ptr<ssl_ctx_st, CtxFree> ctx_;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::unique_ptr<Slot>> slots_;
};

struct TlsSet {
  std::vector<std::shared_ptr<const TlsServer>> listeners;  // by listener index; null = plain
  std::vector<std::shared_ptr<const TlsClient>> routes;     // by route index; null = no wss upstream
  std::size_t certificates = 0;                             // for the reload log line
  bool empty() const { return certificates == 0 && !any_client; }
  bool any_client = false;
};

// Builds every TLS context the config names; throws config::ConfigError.
std::shared_ptr<const TlsSet> build_tls(const config::Config& cfg);

// The subject of the peer's verified certificate (RFC 2253), or "".
std::string peer_subject(ssl_st* ssl);
// Its subject, CN and SANs; empty (present() false) without a verified one.
CertIdentity peer_identity(ssl_st* ssl);
// The newest OpenSSL error on this thread as text ("" when none); clears the queue.
std::string last_tls_error();

}  // namespace weir::net
