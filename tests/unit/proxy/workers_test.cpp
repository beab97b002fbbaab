// Two workers in one process, relaying through the built-in echo upstream,
// driven by blocking clients on other threads: the unit suite's multi-threaded
// case, run under TSan in CI.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "core/worker.h"
#include "net/listener.h"
#include "proxy/gateway.h"
#include "proxy/runtime.h"
#include "proxy/session.h"
#include "upstream/echo_server.h"
#include "ws/frame.h"

namespace weir {
namespace {

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

bool read_exact(int fd, std::uint8_t* p, std::size_t n) {
  while (n) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// Handshake + `messages` echoes of growing binary messages; returns how many
// came back byte for byte.
int client_session(std::uint16_t port, int messages) {
  const int fd = connect_to(port);
  if (fd < 0) return -1;
  const std::string req =
      "GET /t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  ::send(fd, req.data(), req.size(), 0);
  std::string head;
  char c;
  while (head.find("\r\n\r\n") == std::string::npos && ::recv(fd, &c, 1, 0) == 1) head += c;
  if (head.rfind("HTTP/1.1 101", 0) != 0) {
    ::close(fd);
    return -1;
  }
  int ok = 0;
  for (int i = 0; i < messages; ++i) {
    std::vector<std::uint8_t> payload(static_cast<std::size_t>(1 + i * 97));
    for (std::size_t k = 0; k < payload.size(); ++k) payload[k] = static_cast<std::uint8_t>(k + i);
    ws::FrameHeader h;
    h.opcode = ws::Opcode::binary;
    h.masked = true;
    h.payload_len = payload.size();
    ws::random_mask(h.mask);
    std::vector<std::uint8_t> frame(14 + payload.size());
    const std::size_t hl = ws::write_header(frame.data(), h);
    std::memcpy(frame.data() + hl, payload.data(), payload.size());
    ws::apply_mask(frame.data() + hl, payload.size(), h.mask, 0);
    frame.resize(hl + payload.size());
    ::send(fd, frame.data(), frame.size(), 0);
    std::uint8_t hdr[10];
    if (!read_exact(fd, hdr, 2)) break;
    std::size_t extra = (hdr[1] & 0x7F) == 126 ? 2 : (hdr[1] & 0x7F) == 127 ? 8 : 0;
    if (!read_exact(fd, hdr + 2, extra)) break;
    ws::FrameHeader got;
    if (ws::parse_header(hdr, 2 + extra, got) != ws::HeaderStatus::ok) break;
    std::vector<std::uint8_t> back(got.payload_len);
    if (!read_exact(fd, back.data(), back.size())) break;
    ok += back == payload;
  }
  ::close(fd);
  return ok;
}

TEST(Workers, TwoWorkersRelayConcurrentClientsAndShutDown) {
  auto rt = proxy::Runtime::build(std::make_shared<const config::Config>(config::demo_config(0)), 1);
  std::vector<std::unique_ptr<core::Worker>> workers;
  std::vector<std::unique_ptr<proxy::WorkerGateway>> gateways;
  std::vector<std::unique_ptr<upstream::EchoServer>> echo;
  std::vector<std::unique_ptr<net::Listener>> listeners;
  std::uint16_t echo_port = 0, port = 0;
  // The registry is the process's: other tests may have counted on this
  // route's series (same name and labels) before.
  const auto& metrics = rt->routes[0].metrics;
  auto& reg = obs::Registry::global();
  const std::uint64_t messages_before = reg.value(metrics.messages[proxy::Side::client]);
  const std::uint64_t handshakes_before = reg.value(metrics.handshakes);
  for (unsigned i = 0; i < 2; ++i) {
    workers.push_back(std::make_unique<core::Worker>(i, rt->buffer_bytes));
    gateways.push_back(std::make_unique<proxy::WorkerGateway>(*workers.back(), rt));
    echo.push_back(std::make_unique<upstream::EchoServer>(*workers.back(), "127.0.0.1", echo_port));
    echo_port = echo.back()->port();
    gateways.back()->echo_port = echo_port;
    proxy::WorkerGateway* g = gateways.back().get();
    listeners.push_back(std::make_unique<net::Listener>(
        *workers.back(), "127.0.0.1", port,
        [g](core::Worker&, int fd, const sockaddr* peer) { proxy::Session::start(*g, fd, peer); }));
    port = listeners.back()->port();
  }
  for (unsigned i = 0; i < 2; ++i) {
    auto* l = listeners[i].get();
    auto* e = echo[i].get();
    workers[i]->post([l, e] {
      l->start();
      e->start();
    });
    workers[i]->start();
  }

  constexpr int kClients = 16, kMessages = 40;
  std::vector<int> results(kClients, 0);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i)
    clients.emplace_back([&, i] { results[i] = client_session(port, kMessages); });
  for (auto& t : clients) t.join();
  for (int i = 0; i < kClients; ++i) EXPECT_EQ(results[i], kMessages) << "client " << i;

  std::uint64_t upgraded = 0;
  for (auto& w : workers) upgraded += w->stats().sessions_upgraded.get();
  EXPECT_EQ(upgraded, static_cast<std::uint64_t>(kClients));
  EXPECT_EQ(reg.value(metrics.handshakes) - handshakes_before, static_cast<std::uint64_t>(kClients));
  EXPECT_EQ(reg.value(metrics.messages[proxy::Side::client]) - messages_before,
            static_cast<std::uint64_t>(kClients * kMessages));

  // Sessions end once their clients are gone.
  for (int i = 0; i < 200; ++i) {
    if (workers[0]->live() + workers[1]->live() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(workers[0]->live() + workers[1]->live(), 0u);

  for (unsigned i = 0; i < 2; ++i) {
    auto* w = workers[i].get();
    auto* l = listeners[i].get();
    auto* e = echo[i].get();
    w->post([w, l, e] {
      l->stop();
      e->stop();
      w->shutdown_all(ws::close_code::going_away, "test over");
    });
  }
  for (auto& w : workers) w->stop();
  for (auto& w : workers) w->join();
  listeners.clear();
  echo.clear();
  gateways.clear();
  workers.clear();
}

}  // namespace
}  // namespace weir
