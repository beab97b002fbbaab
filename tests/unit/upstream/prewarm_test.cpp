// Pre-warmed connections (upstream/prewarm.h): the config keys and their
// errors, the idle frame scan, and a worker's pools against the built-in
// echo upstream (filled, handed out alive and refilled, emptied when the
// member drains, a connection closed by the backend never handed out).

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <vector>

#include <chrono>
#include <functional>
#include <future>
#include <thread>

#include "config/config.h"
#include "config/error_of.h"
#include "core/worker.h"
#include "http/upgrade.h"
#include "observability/metrics.h"
#include "upstream/echo_server.h"
#include "upstream/group.h"
#include "upstream/prewarm.h"
#include "ws/frame.h"

namespace weir::upstream {
namespace {

using config::testing::error_of;

const std::string kHead = "listeners: [{port: 1}]\nupstream_groups:\n  - name: g\n    members: [127.0.0.1:1]\n";

TEST(PrewarmConfig, ParsesKeysAndDefaults) {
  const auto c = config::load_string(kHead + R"(    prewarm: {size: 8, path: "/ws?pool=1", max_idle: 30s, ping_interval: 2s, timeout: 1s}
  - name: h
    members: [echo]
    prewarm: {size: 1}
routes:
  - {name: a, match: {path: /a}, upstream_group: g, generic_upstream_handshake: true}
  - {name: b, match: {path: /b}, upstream_group: h}
)", "t.yaml");
  const auto& p = c.upstream_groups[0]->prewarm;
  EXPECT_EQ(p.size, 8u);
  EXPECT_EQ(p.path, "/ws?pool=1");
  EXPECT_EQ(p.max_idle, std::chrono::seconds(30));
  EXPECT_EQ(p.ping_interval, std::chrono::seconds(2));
  EXPECT_EQ(p.timeout, std::chrono::seconds(1));
  const auto& d = c.upstream_groups[1]->prewarm;
  EXPECT_EQ(d.size, 1u);
  EXPECT_EQ(d.path, "/");
  EXPECT_EQ(d.max_idle, std::chrono::seconds(60));
  EXPECT_EQ(d.ping_interval, std::chrono::seconds(10));
  EXPECT_EQ(d.timeout, std::chrono::seconds(5));
  EXPECT_TRUE(c.routes[0].generic_upstream_handshake);
  EXPECT_FALSE(c.routes[1].generic_upstream_handshake);
}

TEST(PrewarmConfig, ErrorsPointAtTheKey) {
  const std::string routes = "routes: [{upstream_group: g}]\n";
  EXPECT_EQ(error_of(kHead + "    prewarm: {path: /}\n" + routes),
            "t.yaml:5:14: missing required key 'size' in prewarm");
  EXPECT_EQ(error_of(kHead + "    prewarm: {size: 0}\n" + routes),
            "t.yaml:5:21: 'prewarm.size' must be an integer 1-10000 (connections per member, per worker)");
  EXPECT_EQ(error_of(kHead + "    prewarm: {size: 2, path: nope}\n" + routes),
            "t.yaml:5:30: 'prewarm.path' must be a path starting with '/' (no spaces)");
  EXPECT_EQ(error_of(kHead + "    prewarm: {size: 2, max_idle: 10ms}\n" + routes),
            "t.yaml:5:34: 'prewarm.max_idle' must be at least 100ms");
  EXPECT_EQ(error_of(kHead + "    prewarm: {size: 2, ping_interval: 1s, timeout: 2s}\n" + routes),
            "t.yaml:5:5: 'prewarm.timeout' must be shorter than 'prewarm.ping_interval' (one pong is awaited at a time)");
  EXPECT_EQ(error_of(kHead + "    prewarm: {size: 2, sizes: 3}\n" + routes).substr(0, 43),
            "t.yaml:5:24: unknown key 'sizes' in prewarm");
  EXPECT_EQ(error_of(kHead + "routes: [{upstream_group: g, generic_upstream_handshake: true}]\n"),
            "t.yaml:5:30: 'generic_upstream_handshake' needs an upstream group with 'prewarm' (route 'route1' uses "
            "group 'g')");
  EXPECT_EQ(error_of("listeners: [{port: 1}]\nroutes: [{upstreams: echo, generic_upstream_handshake: true}]\n"),
            "t.yaml:2:28: 'generic_upstream_handshake' needs an upstream group with 'prewarm' (route 'route1' uses "
            "its own 'upstreams')");
  EXPECT_EQ(error_of(kHead + "    prewarm: {size: 1}\nroutes: [{upstream_group: g, generic_upstream_handshake: yes}]\n"),
            "t.yaml:6:58: 'generic_upstream_handshake' must be true or false, got 'yes'");
}

std::string frame(ws::Opcode op, std::string_view payload) {
  std::uint8_t buf[2 + 4 + 125];
  return std::string(reinterpret_cast<const char*>(buf), ws::build_control_frame(buf, op, payload, false));
}

TEST(PrewarmScan, KeepsDataNotesPongsCollectsPings) {
  const std::string data = std::string("\x81\x05hello", 7);
  std::string in = frame(ws::Opcode::pong, "weir-prewarm") + data + frame(ws::Opcode::ping, "p1") + "\x82\x7e\x01";
  std::string early;
  const IdleScan s = scan_idle_frames(in, early, 1024);
  EXPECT_EQ(s.verdict, IdleScan::Verdict::ok);
  EXPECT_TRUE(s.pong);
  ASSERT_EQ(s.pings.size(), 1u);
  EXPECT_EQ(s.pings[0], "p1");
  EXPECT_EQ(early, data);                   // the greeting, byte for byte
  EXPECT_EQ(in, std::string("\x82\x7e\x01", 3));  // a frame begun stays
}

TEST(PrewarmScan, CloseMaskedAndOverflowEndTheConnection) {
  std::string early;
  std::string in = std::string("\x88\x02\x03\xe8", 4);
  EXPECT_EQ(scan_idle_frames(in, early, 1024).verdict, IdleScan::Verdict::close);
  in = std::string("\x81\x81\x00\x00\x00\x00x", 7);
  EXPECT_EQ(scan_idle_frames(in, early, 1024).verdict, IdleScan::Verdict::bad);
  in = std::string("\x82\x7e\x04\x00", 4) + std::string(1024, 'x');
  EXPECT_EQ(scan_idle_frames(in, early, 1000).verdict, IdleScan::Verdict::bad);
  EXPECT_TRUE(early.empty());
}

// One worker with the built-in echo upstream and a pool of `size` for it.
struct PoolRig {
  explicit PoolRig(unsigned size, const std::string& extra = "", const std::string& member = "echo",
                   const std::string& name = "") {
    const std::string label = name.empty() ? "pw" + std::to_string(size) : name;
    cfg = std::make_shared<config::Config>(config::load_string(
        "listeners: [{port: 1}]\nupstream_groups:\n  - name: " + label + "\n    members: [" + member +
            "]\n    prewarm: {size: " + std::to_string(size) + extra + "}\nroutes: [{upstream_group: " + label +
            ", generic_upstream_handshake: true}]\n",
        "t.yaml"));
    group = std::make_shared<Group>(cfg->upstream_groups[0]);
    worker = std::make_unique<core::Worker>(0, 16384);
    echo = std::make_unique<EchoServer>(*worker, "127.0.0.1", 0);
    pools = std::make_unique<PrewarmPools>(*worker, echo->port());
    worker->post([this] {
      echo->start();
      pools->set_groups({group}, {nullptr});
    });
    worker->start();
  }
  ~PoolRig() {
    on_worker([&] {
      pools->stop();
      echo->stop();
    });
    worker->stop();
    worker->join();
    pools.reset();
    echo.reset();
  }
  // Runs f on the worker and waits for it.
  void on_worker(std::function<void()> f) {
    std::promise<void> done;
    worker->post([&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
  std::size_t idle() {
    std::size_t n = 0;
    on_worker([&] { n = pools->idle(*group, 0); });
    return n;
  }
  bool wait_idle(std::size_t want, int ms = 3000) {
    for (int i = 0; i < ms / 10; ++i) {
      if (idle() == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  std::unique_ptr<Pooled> take() {
    std::unique_ptr<Pooled> p;
    on_worker([&] { p = pools->take(*group, 0); });
    return p;
  }
  std::shared_ptr<config::Config> cfg;
  std::shared_ptr<Group> group;
  std::unique_ptr<core::Worker> worker;
  std::unique_ptr<EchoServer> echo;
  std::unique_ptr<PrewarmPools> pools;
};

// A masked text frame through a handed-out connection comes back unmasked.
bool echoes(int fd) {
  std::uint8_t buf[2 + 4 + 125];
  const std::size_t n = ws::build_control_frame(buf, ws::Opcode::text, "pooled", true);
  if (::send(fd, buf, n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) return false;
  std::string got;
  for (int i = 0; i < 300 && got.size() < 8; ++i) {
    char b[64];
    const ssize_t r = ::recv(fd, b, sizeof b, MSG_DONTWAIT);
    if (r > 0) got.append(b, static_cast<std::size_t>(r));
    else std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return got == std::string("\x81\x06pooled", 8);
}

TEST(PrewarmPool, FillsHandsOutOpenConnectionsAndRefills) {
  PoolRig rig(3);
  ASSERT_TRUE(rig.wait_idle(3)) << rig.idle();
  auto a = rig.take();
  ASSERT_TRUE(a);
  EXPECT_GE(a->fd, 0);
  EXPECT_EQ(a->response.status, 101u);
  EXPECT_TRUE(a->early.empty());
  EXPECT_TRUE(echoes(a->fd));
  // The one taken is replaced in the background.
  EXPECT_TRUE(rig.wait_idle(3)) << rig.idle();
}

TEST(PrewarmPool, EmptiedWhileTheMemberDrainsAndNeverHandsOutThen) {
  PoolRig rig(2);
  ASSERT_TRUE(rig.wait_idle(2));
  rig.group->state(0).admin_drain = true;
  EXPECT_TRUE(rig.wait_idle(0)) << rig.idle();
  EXPECT_FALSE(rig.take());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(rig.idle(), 0u);  // not refilled while it drains
  rig.group->state(0).admin_drain = false;
  EXPECT_TRUE(rig.wait_idle(2));
}

TEST(PrewarmPool, ReplacedAfterMaxIdle) {
  PoolRig rig(1, ", max_idle: 200ms, ping_interval: 150ms, timeout: 100ms");
  ASSERT_TRUE(rig.wait_idle(1));
  const auto discarded = [] {
    return obs::Registry::global().value(
        obs::Registry::global().counter("weir_upstream_prewarm_discarded_total", "", {{"group", "pw1"}, {"reason", "max_idle"}}));
  };
  const auto before = discarded();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_GE(discarded() - before, 2u);  // closed at 200-300 ms, and its replacement too
  EXPECT_TRUE(rig.wait_idle(1));
}

// A backend that answers the upgrade (then sends `greeting`, if any) and
// ignores everything after it: pings go unanswered.
class SilentBackend {
 public:
  explicit SilentBackend(std::string greeting) : greeting_(std::move(greeting)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 64);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { accept_loop(); });
  }
  ~SilentBackend() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
    for (auto& t : conns_) t.join();
  }
  std::string member() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  void accept_loop() {
    for (;;) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0 || stop_) {
        if (c >= 0) ::close(c);
        return;
      }
      conns_.emplace_back([this, c] { serve(c); });
    }
  }
  void serve(int c) {
    timeval tv{0, 100'000};
    ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string head;
    char buf[4096];
    while (!stop_ && head.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n == 0) break;
      if (n > 0) head.append(buf, static_cast<std::size_t>(n));
    }
    const auto k = head.find("Sec-WebSocket-Key: ");
    if (k != std::string::npos) {
      const std::string key = head.substr(k + 19, head.find("\r\n", k) - k - 19);
      const std::string out = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: " + http::compute_accept(key) + "\r\n\r\n" + greeting_;
      ::send(c, out.data(), out.size(), MSG_NOSIGNAL);
      while (!stop_) {
        const ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) break;
      }
    }
    ::close(c);
  }
  std::string greeting_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> conns_;  // accept thread only, joined after it
};

std::uint64_t discarded(const std::string& group, const char* reason) {
  auto& r = obs::Registry::global();
  return r.value(r.counter("weir_upstream_prewarm_discarded_total", "", {{"group", group}, {"reason", reason}}));
}

TEST(PrewarmPool, DiscardedWhenThePongIsLate) {
  SilentBackend backend("");
  PoolRig rig(2, ", ping_interval: 200ms, timeout: 100ms", backend.member(), "pw-silent");
  ASSERT_TRUE(rig.wait_idle(2));
  const auto before = discarded("pw-silent", "pong_timeout");
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_GE(discarded("pw-silent", "pong_timeout") - before, 1u);  // pinged at 200 ms, gone by 400 ms
  EXPECT_EQ(discarded("pw-silent", "max_idle"), 0u);
}

TEST(PrewarmPool, AGreetingReachesTheTaker) {
  const std::string greeting("\x81\x05hello", 7);
  SilentBackend backend(greeting);
  PoolRig rig(1, "", backend.member(), "pw-greet");
  ASSERT_TRUE(rig.wait_idle(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the greeting is read while idle
  auto p = rig.take();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->early, greeting);
}

}  // namespace
}  // namespace weir::upstream
