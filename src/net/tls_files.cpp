#include "net/tls_files.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "config/detail.h"
#include "net/tls.h"

namespace weir::net {

namespace {

constexpr std::size_t kMaxTlsFile = 1u << 20;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

// A PEM file in memory: read by us so that "cannot read" names the errno,
// then parsed by OpenSSL.
std::unique_ptr<BIO, BioFree> mem_bio(const std::string& data) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

}  // namespace

std::string last_tls_error() {
  unsigned long e = 0, last = 0;
  while ((e = ERR_get_error()) != 0) last = e;
  if (last == 0) return {};
  char buf[256];
  ERR_error_string_n(last, buf, sizeof buf);
  // "error:0A000086:SSL routines::certificate verify failed" -> the reason.
  const char* reason = std::strrchr(buf, ':');
  return reason != nullptr && reason[1] != '\0' ? std::string(reason + 1) : std::string(buf);
}

std::string peer_subject(SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return {};
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return {};
  X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

namespace {
// An ASN1 string as UTF-8 text; "" when it cannot be converted or holds a
// NUL (a name with an embedded NUL must not match a shorter one).
std::string utf8(const ASN1_STRING* a) {
  unsigned char* out = nullptr;
  const int n = ASN1_STRING_to_UTF8(&out, a);
  if (n < 0) return {};
  std::string s(reinterpret_cast<const char*>(out), static_cast<std::size_t>(n));
  OPENSSL_free(out);
  if (s.find('\0') != std::string::npos) return {};
  return s;
}
}  // namespace

CertIdentity peer_identity(SSL* ssl) {
  CertIdentity id;
  id.subject = peer_subject(ssl);
  if (id.subject.empty()) return id;
  X509* cert = SSL_get0_peer_certificate(ssl);
  const X509_NAME* name = X509_get_subject_name(cert);
  for (int i = -1; (i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) >= 0;)
    id.cn = utf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans == nullptr) return id;
  for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
    std::vector<std::string>* to = g->type == GEN_DNS ? &id.dns : g->type == GEN_URI ? &id.uri
                                  : g->type == GEN_EMAIL ? &id.email : nullptr;
    if (to == nullptr) continue;
    std::string v = utf8(g->d.ia5);
    if (!v.empty()) to->push_back(std::move(v));
  }
  GENERAL_NAMES_free(sans);
  return id;
}

config::ConfigError tls_config_error(const std::string& source, const config::SourcePos& pos,
                                     const std::string& message) {
  ERR_clear_error();
  return config::ConfigError(source, pos.line, pos.col, message);
}

std::string read_file_or_throw(const config::FileRef& file, const std::string& source) {
  std::string data;
  if (const int err = config::detail::read_text_file(file.path, data, kMaxTlsFile); err != 0) {
    throw tls_config_error(source, file.pos, "cannot read " + file.path + ": " + std::strerror(err));
  }
  return data;
}

void load_cert_and_key(SSL_CTX* ctx, const config::FileRef& cert, const config::FileRef& key,
                       const std::string& source) {
  const std::string cert_pem = read_file_or_throw(cert, source);
  const std::string key_pem = read_file_or_throw(key, source);
  ERR_clear_error();
  auto bio = mem_bio(cert_pem);
  X509* leaf = PEM_read_bio_X509_AUX(bio.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr) throw tls_config_error(source, cert.pos, cert.path + ": no PEM certificate found");
  const int ok = SSL_CTX_use_certificate(ctx, leaf);
  X509_free(leaf);
  if (ok != 1) throw tls_config_error(source, cert.pos, cert.path + ": " + last_tls_error());
  SSL_CTX_clear_chain_certs(ctx);
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
      X509_free(ca);
      throw tls_config_error(source, cert.pos, cert.path + ": " + last_tls_error());
    }
  }
  ERR_clear_error();  // the loop ends on "no start line"
  auto kbio = mem_bio(key_pem);
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr);
  if (pkey == nullptr) throw tls_config_error(source, key.pos, key.path + ": no PEM private key found");
  const int kok = SSL_CTX_use_PrivateKey(ctx, pkey);
  EVP_PKEY_free(pkey);
  if (kok != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    throw tls_config_error(source, key.pos, key.path + ": the private key does not match the certificate " +
                                                cert.path);
  }
}

void load_verify_ca(SSL_CTX* ctx, const config::FileRef& ca, const std::string& source) {
  const std::string pem = read_file_or_throw(ca, source);
  auto bio = mem_bio(pem);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int n = 0;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509_STORE_add_cert(store, cert);
    X509_free(cert);
    ++n;
  }
  ERR_clear_error();
  if (n == 0) throw tls_config_error(source, ca.pos, ca.path + ": no PEM certificate found");
}

void load_client_ca(SSL_CTX* ctx, const config::FileRef& ca, const std::string& source) {
  load_verify_ca(ctx, ca, source);
  const std::string pem = read_file_or_throw(ca, source);
  auto bio = mem_bio(pem);
  STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (X509_NAME* n = X509_NAME_dup(X509_get_subject_name(cert))) sk_X509_NAME_push(names, n);
    X509_free(cert);
  }
  ERR_clear_error();
  SSL_CTX_set_client_CA_list(ctx, names);
}

std::vector<std::string> certificate_names(SSL_CTX* ctx) {
  std::vector<std::string> out;
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (cert == nullptr) return out;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      const auto* s = gn->d.dNSName;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<std::size_t>(ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(sans);
  }
  if (out.empty()) {
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
      out.emplace_back(cn);
    }
  }
  return out;
}

}  // namespace weir::net
