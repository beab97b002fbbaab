#pragma once
// Test certificates made in-process with OpenSSL: a CA, and leaf
// certificates it signs, written as PEM files into a scratch directory.
// Nothing is committed; each test makes what it needs.

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace weir::testing {

class Pki {
 public:
  Pki() {
    char tmpl[] = "/tmp/weir-pki-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp");
    dir_ = tmpl;
    ca_key_ = EVP_EC_gen("P-256");
    ca_ = make_cert("Weir Test CA", {}, ca_key_, nullptr, nullptr, true);
    write_cert(ca_, path("ca.pem"));
  }
  ~Pki() {
    X509_free(ca_);
    EVP_PKEY_free(ca_key_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Pki(const Pki&) = delete;
  Pki& operator=(const Pki&) = delete;

  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string ca() const { return path("ca.pem"); }

  // Writes NAME.pem and NAME.key: a leaf with subject CN=cn and DNS SANs.
  void leaf(const std::string& name, const std::string& cn, const std::vector<std::string>& dns) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = make_cert(cn, dns, key, ca_, ca_key_, false);
    write_cert(cert, path(name + ".pem"));
    write_key(key, path(name + ".key"));
    X509_free(cert);
    EVP_PKEY_free(key);
  }

 private:
  static X509* make_cert(const std::string& cn, const std::vector<std::string>& dns, EVP_PKEY* key,
                         X509* issuer, EVP_PKEY* issuer_key, bool is_ca) {
    static long serial = 1;
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, nullptr, nullptr, 0);
    auto add = [&](int nid, const std::string& value) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
      if (ext == nullptr) throw std::runtime_error("bad extension " + value);
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    };
    add(NID_basic_constraints, is_ca ? "critical,CA:TRUE" : "CA:FALSE");
    if (!dns.empty()) {
      std::string san;
      for (const auto& d : dns) san += (san.empty() ? "DNS:" : ",DNS:") + d;
      add(NID_subject_alt_name, san);
    }
    X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
    return x;
  }
  static void write_cert(X509* x, const std::string& p) {
    FILE* f = std::fopen(p.c_str(), "w");
    PEM_write_X509(f, x);
    std::fclose(f);
  }
  static void write_key(EVP_PKEY* k, const std::string& p) {
    FILE* f = std::fopen(p.c_str(), "w");
    PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
  }

  std::string dir_;
  EVP_PKEY* ca_key_ = nullptr;
  X509* ca_ = nullptr;
};

}  // namespace weir::testing
