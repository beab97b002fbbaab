// Client-side TLS towards wss:// upstreams, and building a whole TlsSet.

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include "net/tls.h"
#include "net/tls_files.h"
#include "observability/log.h"

namespace weir::net {

struct TlsClient::Slot {
  std::mutex* mu = nullptr;
  SSL_SESSION* session = nullptr;
  ~Slot() {
    if (session != nullptr) SSL_SESSION_free(session);
  }
};

namespace {

int slot_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

// OpenSSL hands over each new (resumable) session, TLS 1.3 tickets included,
// whenever it arrives; the newest one per upstream is kept. A copy: OpenSSL
// marks a connection's own session not resumable when that connection ends
// without a clean shutdown, which must not spoil the next connection.
int TlsClient::on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* slot = static_cast<Slot*>(SSL_get_ex_data(ssl, slot_index()));
  if (slot == nullptr) return 0;
  SSL_SESSION* copy = SSL_SESSION_dup(session);
  if (copy == nullptr) return 0;
  std::lock_guard lock(*slot->mu);
  if (slot->session != nullptr) SSL_SESSION_free(slot->session);
  slot->session = copy;
  return 0;  // OpenSSL keeps (and drops) its own reference
}

TlsClient::TlsClient(const config::UpstreamTls& conf, const std::string& source) : conf_(conf) {
  ctx_.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX* ctx = ctx_.get();
  if (ctx == nullptr) throw tls_config_error(source, conf.pos, "cannot create a TLS context: " + last_tls_error());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // A peer that closes without close_notify is just gone (WebSocket has its
  // own Close): EOF, not a fatal error that also spoils the session.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                             SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  SSL_CTX_set_alpn_protos(ctx, kHttp11, sizeof kHttp11);
  if (conf.verify) {
    if (!conf.ca.empty()) {
      load_verify_ca(ctx, conf.ca, source);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      throw tls_config_error(source, conf.pos, "cannot load the system CA store: " + last_tls_error());
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!conf.cert.empty()) load_cert_and_key(ctx, conf.cert, conf.key, source);
}

TlsClient::~TlsClient() = default;

void TlsClient::CtxFree::operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }

SSL* TlsClient::new_ssl(const std::string& host, std::uint16_t port) const {
  SSL* ssl = SSL_new(ctx_.get());
  if (ssl == nullptr) return nullptr;
  SSL_set_connect_state(ssl);
  const std::string& name = conf_.server_name.empty() ? host : conf_.server_name;
  const bool ip = is_ip_literal(name);
  if (!ip) SSL_set_tlsext_host_name(ssl, name.c_str());  // SNI carries names only (RFC 6066)
  if (conf_.verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (ip) {
      X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
    }
  }
  const std::string key = host + ":" + std::to_string(port);
  std::lock_guard lock(mu_);
  auto& slot = slots_[key];
  if (!slot) {
    slot = std::make_unique<Slot>();
    slot->mu = &mu_;
  }
  SSL_set_ex_data(ssl, slot_index(), slot.get());
  // A copy for each connection: OpenSSL marks the session of a connection
  // that ends badly not resumable, and other workers use the stored one.
  if (slot->session != nullptr) {
    if (SSL_SESSION* copy = SSL_SESSION_dup(slot->session)) {
      SSL_set_session(ssl, copy);
      SSL_SESSION_free(copy);
    }
  }
  return ssl;
}

std::shared_ptr<const TlsSet> build_tls(const config::Config& cfg) {
  auto set = std::make_shared<TlsSet>();
  for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
    const auto& l = cfg.listeners[i];
    if (!l.tls) {
      set->listeners.push_back(nullptr);
      continue;
    }
    auto server = std::make_shared<const TlsServer>(*l.tls, cfg.source, i);
    set->certificates += server->certificates();
    set->listeners.push_back(std::move(server));
  }
  for (const auto& r : cfg.routes) {
    bool any = false;
    for (const auto& u : r.upstreams) any |= u.tls;
    if (!any) {
      set->routes.push_back(nullptr);
      continue;
    }
    set->routes.push_back(std::make_shared<const TlsClient>(r.upstream_tls, cfg.source));
    set->any_client = true;
  }
  return set;
}

}  // namespace weir::net
