// TLS contexts and the stream layer with real OpenSSL handshakes over a
// socketpair: SNI selection, verification, client certificates, session
// resumption, ticket key rotation, and errors at config positions.

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "config/config.h"
#include "net/stream.h"
#include "net/ticket_keys.h"
#include "net/tls.h"
#include "test_pki.h"

namespace weir::net {
namespace {

using namespace std::chrono_literals;

config::FileRef file(const std::string& path, int line = 0) { return {path, {line, 3}}; }

config::TlsCertificate cert(const testing::Pki& pki, const std::string& name, int line = 0) {
  config::TlsCertificate c;
  c.cert = file(pki.path(name + ".pem"), line);
  c.key = file(pki.path(name + ".key"), line + 1);
  return c;
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki.leaf("default", "weir-default", {"localhost"});
    pki.leaf("a", "weir-a", {"a.weir.test"});
    pki.leaf("b", "weir-b-wild", {"*.b.weir.test"});
    pki.leaf("client", "client1", {});
    conf.certificates = {cert(pki, "default"), cert(pki, "a"), cert(pki, "b")};
  }

  // A connected pair: server SSL on fds[0], client SSL on fds[1].
  struct Pair {
    int fds[2] = {-1, -1};
    SSL* server = nullptr;
    SSL* client = nullptr;
    ~Pair() {
      SSL_free(server);
      SSL_free(client);
      for (int fd : fds) if (fd >= 0) ::close(fd);
    }
  };

  std::unique_ptr<Pair> connect(const TlsServer& s, const TlsClient& c, const std::string& host) {
    auto p = std::make_unique<Pair>();
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fds), 0);
    p->server = s.new_ssl();
    p->client = c.new_ssl(host, 443);
    SSL_set_fd(p->server, p->fds[0]);
    SSL_set_fd(p->client, p->fds[1]);
    return p;
  }

  // Runs both handshakes to the end; false if either failed.
  static bool handshake(Pair& p) {
    bool server_done = false, client_done = false;
    for (int i = 0; i < 100 && !(server_done && client_done); ++i) {
      if (!client_done) {
        const auto r = net::handshake(p.client);
        if (r.status == Io::done) client_done = true;
        else if (!r.would_block()) return false;
      }
      if (!server_done) {
        const auto r = net::handshake(p.server);
        if (r.status == Io::done) server_done = true;
        else if (!r.would_block()) return false;
      }
    }
    return server_done && client_done;
  }

  static std::string served_cn(SSL* client) {
    X509* x = SSL_get0_peer_certificate(client);
    if (x == nullptr) return "";
    char cn[256] = {};
    X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
    return cn;
  }

  // Moves `msg` from one SSL to the other through the stream layer.
  static std::string relay(SSL* from, int from_fd, SSL* to, int to_fd, const std::string& msg) {
    std::size_t sent = 0;
    std::string got;
    char buf[4096];
    for (int i = 0; i < 10000 && got.size() < msg.size(); ++i) {
      if (sent < msg.size()) {
        const auto w = write_some(from_fd, from, msg.data() + sent, msg.size() - sent);
        if (w.status == Io::done) sent += w.n;
        else if (!w.would_block()) return "write failed: " + describe(w);
      }
      const auto r = read_some(to_fd, to, buf, sizeof buf);
      if (r.status == Io::done) got.append(buf, r.n);
      else if (!r.would_block()) return "read failed: " + describe(r);
    }
    return got;
  }

  testing::Pki pki;
  config::ListenerTls conf;
};

TEST_F(TlsTest, SniSelectsCertificate) {
  TlsServer server(conf, "t.yaml", 100);
  EXPECT_EQ(server.certificates(), 3u);
  EXPECT_EQ(server.select("localhost"), 0);
  EXPECT_EQ(server.select("a.weir.test"), 1);
  EXPECT_EQ(server.select("A.Weir.Test"), 1);
  EXPECT_EQ(server.select("x.b.weir.test"), 2);
  EXPECT_EQ(server.select("b.weir.test"), -1);     // a wildcard needs a label
  EXPECT_EQ(server.select("y.x.b.weir.test"), -1);  // ... exactly one
  EXPECT_EQ(server.select("other.test"), -1);

  config::UpstreamTls up;
  up.ca = file(pki.ca());
  up.server_name = "";
  TlsClient client(up, "t.yaml");
  for (const auto& [host, cn] : std::vector<std::pair<std::string, std::string>>{
           {"localhost", "weir-default"}, {"a.weir.test", "weir-a"}, {"x.b.weir.test", "weir-b-wild"}}) {
    auto p = connect(server, client, host);
    ASSERT_TRUE(handshake(*p)) << host;
    EXPECT_EQ(served_cn(p->client), cn) << host;
    EXPECT_STREQ(SSL_get_servername(p->server, TLSEXT_NAMETYPE_host_name), host.c_str());
  }
}

TEST_F(TlsTest, UnknownNameGetsDefaultOrIsRefusedWhenStrict) {
  config::UpstreamTls up;
  up.verify = false;
  TlsClient client(up, "t.yaml");
  {
    TlsServer server(conf, "t.yaml", 101);
    auto p = connect(server, client, "unknown.test");
    ASSERT_TRUE(handshake(*p));
    EXPECT_EQ(served_cn(p->client), "weir-default");
  }
  conf.strict_sni = true;
  TlsServer strict(conf, "t.yaml", 102);
  auto p = connect(strict, client, "unknown.test");
  EXPECT_FALSE(handshake(*p));
  auto ok = connect(strict, client, "a.weir.test");
  EXPECT_TRUE(handshake(*ok));
}

TEST_F(TlsTest, VerificationFailsOnWrongNameAndUnknownCa) {
  TlsServer server(conf, "t.yaml", 103);
  config::UpstreamTls up;
  up.ca = file(pki.ca());
  up.server_name = "not-localhost.test";
  TlsClient wrong_name(up, "t.yaml");
  auto p = connect(server, wrong_name, "localhost");
  EXPECT_FALSE(handshake(*p));
  EXPECT_EQ(SSL_get_verify_result(p->client), X509_V_ERR_HOSTNAME_MISMATCH);

  testing::Pki other;
  up.ca = file(other.ca());
  up.server_name = "";
  TlsClient wrong_ca(up, "t.yaml");
  auto q = connect(server, wrong_ca, "localhost");
  EXPECT_FALSE(handshake(*q));
  EXPECT_NE(SSL_get_verify_result(q->client), X509_V_OK);

  up.verify = false;
  TlsClient insecure(up, "t.yaml");
  auto r = connect(server, insecure, "localhost");
  EXPECT_TRUE(handshake(*r));
}

TEST_F(TlsTest, StreamMovesBytesBothWays) {
  TlsServer server(conf, "t.yaml", 104);
  config::UpstreamTls up;
  up.ca = file(pki.ca());
  TlsClient client(up, "t.yaml");
  auto p = connect(server, client, "localhost");
  ASSERT_TRUE(handshake(*p));
  std::string big(300 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  EXPECT_EQ(relay(p->client, p->fds[1], p->server, p->fds[0], big), big);
  EXPECT_EQ(relay(p->server, p->fds[0], p->client, p->fds[1], "hello"), "hello");
  // Nothing more to read: the stream says which readiness to wait for.
  char buf[16];
  EXPECT_EQ(read_some(p->fds[0], p->server, buf, sizeof buf).status, Io::want_read);
  // close_notify reads as EOF.
  SSL_shutdown(p->client);
  EXPECT_EQ(read_some(p->fds[0], p->server, buf, sizeof buf).status, Io::eof);
}

TEST_F(TlsTest, PlainStreamReportsEofAndErrors) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
  const std::string a = "abc", b = "defg";
  const auto w = write_some(fds[0], nullptr, a.data(), a.size(), b.data(), b.size());
  EXPECT_EQ(w.status, Io::done);
  EXPECT_EQ(w.n, 7u);
  char buf[16];
  auto r = read_some(fds[1], nullptr, buf, sizeof buf);
  EXPECT_EQ(std::string(buf, r.n), "abcdefg");
  EXPECT_EQ(read_some(fds[1], nullptr, buf, sizeof buf).status, Io::want_read);
  ::close(fds[0]);
  EXPECT_EQ(read_some(fds[1], nullptr, buf, sizeof buf).status, Io::eof);
  const auto e = write_some(fds[1], nullptr, a.data(), a.size());
  EXPECT_EQ(e.status, Io::error);
  EXPECT_EQ(e.err, EPIPE);
  ::close(fds[1]);
}

TEST_F(TlsTest, ClientCertificates) {
  conf.client_ca = file(pki.ca());
  conf.client_cert = config::ListenerTls::ClientCert::require;
  TlsServer server(conf, "t.yaml", 105);
  config::UpstreamTls up;
  up.ca = file(pki.ca());
  TlsClient anonymous(up, "t.yaml");
  auto p = connect(server, anonymous, "localhost");
  EXPECT_FALSE(handshake(*p));  // TLS 1.3: the client may finish first; the server refuses

  up.cert = file(pki.path("client.pem"));
  up.key = file(pki.path("client.key"));
  TlsClient with_cert(up, "t.yaml");
  auto q = connect(server, with_cert, "localhost");
  ASSERT_TRUE(handshake(*q));
  EXPECT_EQ(peer_subject(q->server), "CN=client1");

  conf.client_cert = config::ListenerTls::ClientCert::optional;
  TlsServer optional(conf, "t.yaml", 106);
  auto r = connect(optional, anonymous, "localhost");
  ASSERT_TRUE(handshake(*r));
  EXPECT_EQ(peer_subject(r->server), "");
}

TEST_F(TlsTest, UpstreamSessionsAreResumed) {
  TlsServer server(conf, "t.yaml", 107);
  config::UpstreamTls up;
  up.ca = file(pki.ca());
  TlsClient client(up, "t.yaml");
  {
    auto p = connect(server, client, "localhost");
    ASSERT_TRUE(handshake(*p));
    EXPECT_FALSE(SSL_session_reused(p->client));
    // TLS 1.3 tickets arrive after the handshake; reading takes them in.
    EXPECT_EQ(relay(p->server, p->fds[0], p->client, p->fds[1], "x"), "x");
    // Ended without close_notify: the stored session must still resume.
  }
  // Each resumption is handed a fresh ticket (clients use a ticket once), so
  // resumption keeps working connection after connection.
  for (int i = 0; i < 3; ++i) {
    auto q = connect(server, client, "localhost");
    ASSERT_TRUE(handshake(*q));
    EXPECT_TRUE(SSL_session_reused(q->client)) << i;
    EXPECT_TRUE(SSL_session_reused(q->server)) << i;
    const SSL_SESSION* resumed = SSL_get0_session(q->client);
    EXPECT_EQ(relay(q->server, q->fds[0], q->client, q->fds[1], "y"), "y");
    EXPECT_NE(SSL_get0_session(q->client), resumed) << "no new ticket after resumption " << i;
  }
}

TEST_F(TlsTest, TicketsOffFallsBackToTheSessionCacheOrNothing) {
  conf.session_tickets = false;
  conf.session_cache = 0;
  TlsServer server(conf, "t.yaml", 108);
  config::UpstreamTls up;
  up.ca = file(pki.ca());
  TlsClient client(up, "t.yaml");
  {
    auto p = connect(server, client, "localhost");
    ASSERT_TRUE(handshake(*p));
    relay(p->server, p->fds[0], p->client, p->fds[1], "x");
  }
  auto q = connect(server, client, "localhost");
  ASSERT_TRUE(handshake(*q));
  EXPECT_FALSE(SSL_session_reused(q->server));
}

TEST_F(TlsTest, ErrorsPointAtTheConfig) {
  auto error_of = [&](const config::ListenerTls& c) -> std::string {
    try {
      TlsServer s(c, "w.yaml", 109);
    } catch (const config::ConfigError& e) {
      return e.what();
    }
    return "no error";
  };
  config::ListenerTls c = conf;
  c.certificates = {cert(pki, "default", 7)};
  c.certificates[0].cert.path = pki.path("missing.pem");
  EXPECT_EQ(error_of(c), "w.yaml:7:3: cannot read " + pki.path("missing.pem") + ": No such file or directory");

  c.certificates = {cert(pki, "default", 7)};
  c.certificates[0].key = file(pki.path("a.key"), 8);
  EXPECT_EQ(error_of(c), "w.yaml:8:3: " + pki.path("a.key") + ": the private key does not match the certificate " +
                             pki.path("default.pem"));

  c.certificates = {cert(pki, "default", 7)};
  c.certificates[0].cert = file(pki.path("default.key"), 7);  // a key where the cert should be
  EXPECT_EQ(error_of(c), "w.yaml:7:3: " + pki.path("default.key") + ": no PEM certificate found");

  c.certificates = {cert(pki, "default", 7)};
  c.ciphers = "NO-SUCH-CIPHER";
  EXPECT_NE(error_of(c).find("tls.ciphers: no usable cipher"), std::string::npos);
}

TEST(TicketKeys, RotateAndAcceptThePreviousKey) {
  TicketKeys ring(1000ms);
  const auto k1 = ring.current(0);
  EXPECT_EQ(std::memcmp(ring.current(999).name, k1.name, 16), 0);
  TicketKeys::Key found;
  bool current = false;
  ASSERT_TRUE(ring.find(k1.name, found, &current, 500));
  EXPECT_TRUE(current);
  const auto k2 = ring.current(1000);  // rotated
  EXPECT_NE(std::memcmp(k2.name, k1.name, 16), 0);
  ASSERT_TRUE(ring.find(k1.name, found, &current, 1500));
  EXPECT_FALSE(current);  // still accepted, but renewed
  EXPECT_EQ(std::memcmp(found.aes, k1.aes, 32), 0);
  EXPECT_FALSE(ring.find(k1.name, found, &current, 2000));  // two periods old
  ring.current(2000);
  ring.current(3000);
  EXPECT_EQ(ring.size(), 2u);
  EXPECT_FALSE(ring.find(k2.name, found, &current, 3000));
}

}  // namespace
}  // namespace weir::net
