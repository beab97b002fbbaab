// Server-side TLS contexts: one SSL_CTX per certificate (SNI switches the
// connection to the right one), shared listener settings on each.

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>

#include "core/clock.h"
#include "net/ticket_keys.h"
#include "net/tls.h"
#include "net/tls_files.h"

namespace weir::net {

namespace {

int ticket_ring_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// RFC 5077 tickets sealed with AES-256-CBC + HMAC-SHA256 under the listener's
// rotating keys. Returns 1 (ok), 2 (ok, renew the ticket) or 0 (unknown key:
// full handshake).
int on_ticket_key(SSL* ssl, unsigned char key_name[16], unsigned char* iv, EVP_CIPHER_CTX* cctx,
                  EVP_MAC_CTX* hctx, int enc) {
  auto* ring = static_cast<TicketKeys*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticket_ring_index()));
  if (ring == nullptr) return 0;
  const auto now = core::coarse_now_ms();
  TicketKeys::Key k;
  int rc = 1;
  if (enc) {
    try {
      k = ring->current(now);
    } catch (const std::exception&) {
      return -1;  // no randomness: no ticket (never throw through OpenSSL)
    }
    std::memcpy(key_name, k.name, 16);
    if (RAND_bytes(iv, 16) != 1) return -1;
    if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, k.aes, iv) != 1) return -1;
  } else {
    bool is_current = false;
    if (!ring->find(key_name, k, &is_current, now)) return 0;
    if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), nullptr, k.aes, iv) != 1) return -1;
    // Always issue a fresh ticket: clients use a TLS 1.3 ticket once (RFC
    // 8446 C.4), so without one every other connection would be a full
    // handshake.
    (void)is_current;
    rc = 2;
  }
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof k.hmac),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_MAC_CTX_set_params(hctx, params) != 1) return -1;
  return rc;
}

int on_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
            unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof kHttp11, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  // No http/1.1 offered (h2 only): WebSocket over HTTP/1.1 is all we speak,
  // so go on without ALPN rather than fail the handshake.
  return SSL_TLSEXT_ERR_NOACK;
}

std::string lower_ascii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return out;
}

}  // namespace

int TlsServer::on_servername(SSL* ssl, int* alert, void* arg) {
  const auto* self = static_cast<const TlsServer*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_NOACK;  // no SNI: the default certificate
  const int index = self->select(name);
  if (index < 0) {
    if (self->conf_.strict_sni) {
      *alert = SSL_AD_UNRECOGNIZED_NAME;
      return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_NOACK;
  }
  if (index != 0) SSL_set_SSL_CTX(ssl, self->certs_[static_cast<std::size_t>(index)]->ctx);
  return SSL_TLSEXT_ERR_OK;
}

int TlsServer::on_status(SSL* ssl, void* arg) {
  const auto* cert = static_cast<const Cert*>(arg);
  if (cert->ocsp_der.empty()) return SSL_TLSEXT_ERR_NOACK;
  auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(cert->ocsp_der.size()));
  if (copy == nullptr) return SSL_TLSEXT_ERR_NOACK;
  std::memcpy(copy, cert->ocsp_der.data(), cert->ocsp_der.size());
  SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(cert->ocsp_der.size()));
  return SSL_TLSEXT_ERR_OK;
}

int TlsServer::select(std::string_view host) const {
  const std::string name = lower_ascii(host);
  if (auto it = names_.find(name); it != names_.end()) return it->second;
  // RFC 6125: a wildcard stands for exactly one left-most label.
  const auto dot = name.find('.');
  if (dot != std::string::npos && dot > 0) {
    if (auto it = names_.find("*" + name.substr(dot)); it != names_.end()) return it->second;
  }
  return -1;
}

TlsServer::TlsServer(const config::ListenerTls& conf, const std::string& source, std::size_t listener_index)
    : conf_(conf) {
  TicketKeys& ring = TicketKeys::for_listener(listener_index, conf.ticket_key_rotation);
  // One session-id context per listener: sessions and tickets are only
  // resumed on the listener (and client-certificate policy) that made them.
  // The client-certificate policy (CA file contents and mode) is part of it,
  // so a reload that changes it also ends resumption under the old one.
  std::string sid_ctx = "weir-l" + std::to_string(listener_index);
  if (!conf.client_ca.empty()) {
    const std::string ca = read_file_or_throw(conf.client_ca, source);
    unsigned char md[32];
    SHA256(reinterpret_cast<const unsigned char*>(ca.data()), ca.size(), md);
    static const char* hex = "0123456789abcdef";
    sid_ctx += static_cast<char>('0' + static_cast<int>(conf.client_cert));
    for (int i = 0; i < 8; ++i) {
      sid_ctx += hex[md[i] >> 4];
      sid_ctx += hex[md[i] & 15];
    }
  }
  for (const auto& c : conf.certificates) {
    auto cert = std::make_unique<Cert>();
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) throw tls_config_error(source, c.pos, "cannot create a TLS context: " + last_tls_error());
    cert->ctx = ctx;
    certs_.push_back(std::move(cert));
    load_cert_and_key(ctx, c.cert, c.key, source);
    if (!c.ocsp.empty()) {
      certs_.back()->ocsp_der = read_file_or_throw(c.ocsp, source);
      const auto* p = reinterpret_cast<const unsigned char*>(certs_.back()->ocsp_der.data());
      OCSP_RESPONSE* resp = d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(certs_.back()->ocsp_der.size()));
      if (resp == nullptr) {
        throw tls_config_error(source, c.ocsp.pos, c.ocsp.path + ": not a DER OCSP response");
      }
      OCSP_RESPONSE_free(resp);
    }
    SSL_CTX_set_min_proto_version(ctx, conf.min_version);
    if (!conf.ciphers.empty() && SSL_CTX_set_cipher_list(ctx, conf.ciphers.c_str()) != 1) {
      throw tls_config_error(source, conf.pos, "tls.ciphers: no usable cipher in '" + conf.ciphers + "'");
    }
    if (!conf.ciphersuites.empty() && SSL_CTX_set_ciphersuites(ctx, conf.ciphersuites.c_str()) != 1) {
      throw tls_config_error(source, conf.pos,
                             "tls.ciphersuites: no usable TLS 1.3 suite in '" + conf.ciphersuites + "'");
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    // Idle connections give their read/write buffers back (about 34 KiB each
    // otherwise); partial writes let the relay write what the socket takes.
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>(sid_ctx.data()),
                                   static_cast<unsigned>(sid_ctx.size()));
    if (conf.session_cache > 0) {
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
      SSL_CTX_sess_set_cache_size(ctx, conf.session_cache);
    } else {
      SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    if (conf.session_tickets) {
      SSL_CTX_set_ex_data(ctx, ticket_ring_index(), &ring);
      SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key);
      // A ticket is only sure to be accepted for one rotation period.
      SSL_CTX_set_timeout(ctx, std::max<long>(1, static_cast<long>(conf.ticket_key_rotation.count() / 1000)));
    } else {
      SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
      if (conf.session_cache == 0) SSL_CTX_set_num_tickets(ctx, 0);
    }
    if (!conf.client_ca.empty()) {
      load_client_ca(ctx, conf.client_ca, source);
      int mode = SSL_VERIFY_PEER;
      if (conf.client_cert == config::ListenerTls::ClientCert::require) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
      if (conf.client_cert != config::ListenerTls::ClientCert::none) SSL_CTX_set_verify(ctx, mode, nullptr);
    }
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, this);
    SSL_CTX_set_tlsext_status_cb(ctx, on_status);
    SSL_CTX_set_tlsext_status_arg(ctx, certs_.back().get());
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, nullptr);

    const int index = static_cast<int>(certs_.size() - 1);
    std::vector<std::string> names = c.names;
    if (names.empty()) names = certificate_names(ctx);
    for (const auto& n : names) names_.emplace(lower_ascii(n), index);  // the first entry wins
  }
}

TlsServer::~TlsServer() = default;

TlsServer::Cert::~Cert() { SSL_CTX_free(ctx); }

SSL* TlsServer::new_ssl() const {
  SSL* ssl = SSL_new(certs_.front()->ctx);
  if (ssl != nullptr) SSL_set_accept_state(ssl);
  return ssl;
}

}  // namespace weir::net
