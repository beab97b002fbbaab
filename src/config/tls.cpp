// The TLS sections of the schema: a listener's `tls` and a route's
// `upstream_tls` (docs/configuration.md). Files are only named here; they are
// read, and their contents checked, when TLS contexts are built (net/tls_*),
// which reports problems at the positions recorded here.

#include <filesystem>

#include "config/loader.h"

namespace weir::config::detail {

FileRef Loader::file(const Field& f) const {
  FileRef ref;
  ref.path = scalar(f, "a file path");
  if (ref.path.empty()) fail(f.mark, f.label + " must not be empty");
  if (ref.path.find('\0') != std::string::npos) fail(f.mark, f.label + " must not contain a NUL byte");
  const std::filesystem::path p(ref.path);
  if (p.is_relative() && !base_dir_.empty()) ref.path = (std::filesystem::path(base_dir_) / p).string();
  ref.pos = pos(f.mark);
  return ref;
}


ListenerTls Loader::listener_tls(const Field& f) const {
  const Fields fs = fields(f, "in listener tls",
                           {"certificates", "min_version", "ciphers", "ciphersuites",
                            "session_tickets", "ticket_key_rotation", "session_cache", "client_ca",
                            "client_cert", "strict_sni", "handshake_timeout"});
  ListenerTls t;
  t.pos = pos(f.key_mark);
  const Field& certs = require(fs, "certificates", "in listener tls");
  for (const Field& item : list(certs, false)) {
    if (!item.node.IsMap()) {
      fail(item.mark, item.label + " must be a mapping with 'cert' and 'key', got " + describe(item.node));
    }
    const Fields cf = fields(item, "in a tls certificate", {"cert", "key", "names", "ocsp"});
    TlsCertificate c;
    c.pos = pos(item.mark);
    c.cert = file(require(cf, "cert", "in a tls certificate"));
    c.key = file(require(cf, "key", "in a tls certificate"));
    if (const Field* v = cf.find("ocsp")) c.ocsp = file(*v);
    if (const Field* v = cf.find("names")) {
      for (const Field& n : list(*v, true)) {
        const std::string name = lower(scalar(n, "a host name such as chat.example.com or *.example.com"));
        if (!valid_match_host(name)) {
          fail(n.mark, "invalid certificate name " + quote(name) +
                           " (use a host name such as chat.example.com or *.example.com)");
        }
        c.names.push_back(name);
      }
    }
    t.certificates.push_back(std::move(c));
  }
  if (t.certificates.empty()) {
    fail(certs.mark, certs.label + " must not be empty (add at least one cert and key)");
  }
  if (const Field* v = fs.find("min_version")) {
    const std::string text = scalar(*v, "\"1.2\" or \"1.3\"");
    if (text == "1.2" || text == "TLSv1.2") {
      t.min_version = 0x0303;
    } else if (text == "1.3" || text == "TLSv1.3") {
      t.min_version = 0x0304;
    } else {
      fail(v->mark, v->label + " must be \"1.2\" or \"1.3\" (older versions are not offered), got " +
                        quote(text));
    }
  }
  if (const Field* v = fs.find("ciphers")) t.ciphers = scalar(*v, "an OpenSSL cipher list");
  if (const Field* v = fs.find("ciphersuites")) t.ciphersuites = scalar(*v, "a TLS 1.3 ciphersuite list");
  if (const Field* v = fs.find("session_tickets")) t.session_tickets = boolean(*v);
  if (const Field* v = fs.find("ticket_key_rotation")) t.ticket_key_rotation = duration(*v, false);
  if (const Field* v = fs.find("session_cache")) {
    static constexpr std::string_view rule = "an integer 0-10000000 (0 = off)";
    const auto n = parse_uint(scalar(*v, rule));
    if (!n || *n > 10'000'000) fail(v->mark, v->label + " must be " + std::string(rule));
    t.session_cache = static_cast<std::uint32_t>(*n);
  }
  if (const Field* v = fs.find("client_ca")) {
    t.client_ca = file(*v);
    t.client_cert = ListenerTls::ClientCert::require;
  }
  if (const Field* v = fs.find("client_cert")) {
    static constexpr std::string_view rule = "one of none, optional, require";
    const std::string text = scalar(*v, rule);
    if (text == "none") {
      t.client_cert = ListenerTls::ClientCert::none;
    } else if (text == "optional") {
      t.client_cert = ListenerTls::ClientCert::optional;
    } else if (text == "require") {
      t.client_cert = ListenerTls::ClientCert::require;
    } else {
      fail(v->mark, v->label + " must be " + std::string(rule) + ", got " + quote(text));
    }
    if (t.client_cert != ListenerTls::ClientCert::none && t.client_ca.empty()) {
      fail(v->mark, v->label + " needs 'client_ca' (the CA that signs client certificates)");
    }
  }
  if (const Field* v = fs.find("strict_sni")) t.strict_sni = boolean(*v);
  if (const Field* v = fs.find("handshake_timeout")) t.handshake_timeout = duration(*v, false);
  return t;
}

UpstreamTls Loader::upstream_tls(const Field& f) const {
  const Fields fs = fields(f, "in upstream_tls", {"ca", "verify", "server_name", "cert", "key"});
  UpstreamTls t;
  t.pos = pos(f.key_mark);
  if (const Field* v = fs.find("ca")) t.ca = file(*v);
  if (const Field* v = fs.find("verify")) t.verify = boolean(*v);
  if (const Field* v = fs.find("server_name")) {
    t.server_name = lower(scalar(*v, "a host name"));
    if (!valid_match_host(t.server_name) || t.server_name.front() == '*') {
      fail(v->mark, v->label + " must be a host name, got " + quote(t.server_name));
    }
  }
  const Field* cert = fs.find("cert");
  const Field* key = fs.find("key");
  if ((cert == nullptr) != (key == nullptr)) {
    const Field* given = cert != nullptr ? cert : key;
    fail(given->key_mark, "'upstream_tls' needs both 'cert' and 'key' for a client certificate");
  }
  if (cert != nullptr) {
    t.cert = file(*cert);
    t.key = file(*key);
  }
  return t;
}

}  // namespace weir::config::detail
