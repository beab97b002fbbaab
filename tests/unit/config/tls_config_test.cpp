// The TLS sections of the schema: defaults, paths, and errors at file:line:col.

#include <gtest/gtest.h>

#include <string>

#include "config/config.h"
#include "error_of.h"

namespace weir::config {
namespace {

using namespace std::chrono_literals;

using testing::error_of;

// A listener whose `tls` body is `tls` (indented 6).
std::string with_tls(const std::string& tls) {
  return "listeners:\n  - port: 8443\n    tls:\n" + tls + "routes:\n  - upstreams: echo\n";
}

constexpr const char* kCert = "      certificates:\n        - cert: /c.pem\n          key: /k.pem\n";

TEST(TlsConfig, Defaults) {
  const Config c = load_string(with_tls(kCert), "t.yaml");
  ASSERT_TRUE(c.listeners[0].tls);
  const ListenerTls& t = *c.listeners[0].tls;
  ASSERT_EQ(t.certificates.size(), 1u);
  EXPECT_EQ(t.certificates[0].cert.path, "/c.pem");
  EXPECT_EQ(t.certificates[0].cert.pos.line, 5);
  EXPECT_EQ(t.certificates[0].cert.pos.col, 17);
  EXPECT_EQ(t.certificates[0].key.pos.line, 6);
  EXPECT_EQ(t.min_version, 0x0303);
  EXPECT_TRUE(t.session_tickets);
  EXPECT_EQ(t.ticket_key_rotation, 1h);
  EXPECT_EQ(t.session_cache, 20000u);
  EXPECT_EQ(t.client_cert, ListenerTls::ClientCert::none);
  EXPECT_FALSE(t.strict_sni);
  EXPECT_EQ(t.handshake_timeout, 10s);
  EXPECT_FALSE(load_string(with_tls(kCert), "t.yaml").routes[0].upstreams[0].tls);
}

TEST(TlsConfig, EveryKey) {
  const Config c = load_string(with_tls(std::string(kCert) +
                                        "          names: [A.example.com, '*.b.example.com']\n"
                                        "          ocsp: /o.der\n"
                                        "      min_version: \"1.3\"\n"
                                        "      ciphers: ECDHE+AESGCM\n"
                                        "      ciphersuites: TLS_AES_128_GCM_SHA256\n"
                                        "      session_tickets: false\n"
                                        "      ticket_key_rotation: 10m\n"
                                        "      session_cache: 0\n"
                                        "      client_ca: /ca.pem\n"
                                        "      strict_sni: true\n"
                                        "      handshake_timeout: 2s\n"),
                               "t.yaml");
  const ListenerTls& t = *c.listeners[0].tls;
  EXPECT_EQ(t.certificates[0].names, (std::vector<std::string>{"a.example.com", "*.b.example.com"}));
  EXPECT_EQ(t.certificates[0].ocsp.path, "/o.der");
  EXPECT_EQ(t.min_version, 0x0304);
  EXPECT_EQ(t.ciphers, "ECDHE+AESGCM");
  EXPECT_EQ(t.ciphersuites, "TLS_AES_128_GCM_SHA256");
  EXPECT_FALSE(t.session_tickets);
  EXPECT_EQ(t.ticket_key_rotation, 10min);
  EXPECT_EQ(t.session_cache, 0u);
  EXPECT_EQ(t.client_ca.path, "/ca.pem");
  EXPECT_EQ(t.client_cert, ListenerTls::ClientCert::require);  // implied by client_ca
  EXPECT_TRUE(t.strict_sni);
  EXPECT_EQ(t.handshake_timeout, 2s);
}

TEST(TlsConfig, Errors) {
  EXPECT_EQ(error_of(with_tls("      min_version: \"1.1\"\n" + std::string(kCert))),
            "t.yaml:4:20: 'tls.min_version' must be \"1.2\" or \"1.3\" (older versions are not offered), got '1.1'");
  EXPECT_EQ(error_of(with_tls("      min_version: \"1.2\"\n")),
            "t.yaml:4:7: missing required key 'certificates' in listener tls");
  EXPECT_EQ(error_of(with_tls("      certificates: []\n")),
            "t.yaml:4:21: 'tls.certificates' must not be empty (add at least one cert and key)");
  EXPECT_EQ(error_of(with_tls("      certificates:\n        - cert: /c.pem\n")),
            "t.yaml:5:11: missing required key 'key' in a tls certificate");
  EXPECT_EQ(error_of(with_tls(std::string(kCert) + "      client_certs: require\n")),
            "t.yaml:7:7: unknown key 'client_certs' in listener tls (did you mean 'client_cert'?)");
  EXPECT_EQ(error_of(with_tls(std::string(kCert) + "      client_cert: optional\n")),
            "t.yaml:7:20: 'tls.client_cert' needs 'client_ca' (the CA that signs client certificates)");
  EXPECT_EQ(error_of(with_tls(std::string(kCert) + "      client_ca: /ca.pem\n      client_cert: maybe\n")),
            "t.yaml:8:20: 'tls.client_cert' must be one of none, optional, require, got 'maybe'");
  EXPECT_EQ(error_of(with_tls(std::string(kCert) + "          names: ['bad name']\n")),
            "t.yaml:7:19: invalid certificate name 'bad name' (use a host name such as chat.example.com or "
            "*.example.com)");
  EXPECT_EQ(error_of(with_tls(std::string(kCert) + "      handshake_timeout: 0\n")),
            "t.yaml:7:26: 'tls.handshake_timeout' must be greater than 0");
}

TEST(TlsConfig, UpstreamTls) {
  const std::string base = "listeners:\n  - port: 8080\nroutes:\n  - upstreams: [";
  const Config c = load_string(base + "'wss://b.internal:9443', 'ws://c:80']\n"
                                      "    upstream_tls:\n      ca: /ca.pem\n      verify: false\n"
                                      "      server_name: Backend.Internal\n      cert: /c.pem\n      key: /k.pem\n",
                               "t.yaml");
  const Route& r = c.routes[0];
  EXPECT_TRUE(r.upstreams[0].tls);
  EXPECT_FALSE(r.upstreams[1].tls);
  EXPECT_EQ(r.upstream_tls.ca.path, "/ca.pem");
  EXPECT_FALSE(r.upstream_tls.verify);
  EXPECT_EQ(r.upstream_tls.server_name, "backend.internal");
  EXPECT_EQ(r.upstream_tls.cert.path, "/c.pem");
  EXPECT_TRUE(load_string(base + "'wss://b:1']\n", "t.yaml").routes[0].upstream_tls.verify);

  EXPECT_EQ(error_of(base + "'ws://b:1']\n    upstream_tls:\n      verify: false\n"),
            "t.yaml:5:5: 'upstream_tls' is set but no upstream of this route is wss://");
  EXPECT_EQ(error_of(base + "'wss://b:1']\n    upstream_tls:\n      cert: /c.pem\n"),
            "t.yaml:6:7: 'upstream_tls' needs both 'cert' and 'key' for a client certificate");
  EXPECT_EQ(error_of(base + "'wss://b:1']\n    upstream_tls:\n      server_name: '*.x'\n"),
            "t.yaml:6:20: 'upstream_tls.server_name' must be a host name, got '*.x'");
}

}  // namespace
}  // namespace weir::config
