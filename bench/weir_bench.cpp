// weir-bench: WebSocket load generator, echo backend and floor relay (see bench/README.md).

#include <CLI/CLI.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "bench_client.h"
#include "tcp_relay.h"
#include "config/config.h"
#include "core/worker.h"
#include "upstream/echo_server.h"

namespace {

using weir::bench::Options;
using weir::bench::Result;

void print(const char* mode, const Options& o, const Result& r, bool json) {
  const double secs = r.seconds > 0 ? r.seconds : 1;
  if (json) {
    std::printf(
        "{\"mode\":\"%s\",\"connections\":%u,\"size\":%zu,\"inflight\":%u,\"rate\":%.0f,\"seconds\":%.2f,"
        "\"messages\":%llu,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"connects\":%llu,\"connects_per_s\":%.1f,"
        "\"alive\":%llu,\"errors\":%llu,\"mismatches\":%llu,\"p50_us\":%llu,\"p90_us\":%llu,\"p99_us\":%llu,"
        "\"p999_us\":%llu,\"max_us\":%llu,\"tls\":%s,\"tls_handshakes\":%llu,\"tls_resumed\":%llu,"
        "\"tls_tickets\":%llu,\"tls_info\":\"%s\",\"compressed_conns\":%llu}\n",
        mode, o.connections, o.size, o.inflight, o.rate, secs, static_cast<unsigned long long>(r.messages),
        r.messages / secs, r.bytes / secs / 1e6, static_cast<unsigned long long>(r.connects), r.connects / secs,
        static_cast<unsigned long long>(r.alive), static_cast<unsigned long long>(r.errors),
        static_cast<unsigned long long>(r.mismatches),
        static_cast<unsigned long long>(r.latency.percentile(50)),
        static_cast<unsigned long long>(r.latency.percentile(90)),
        static_cast<unsigned long long>(r.latency.percentile(99)),
        static_cast<unsigned long long>(r.latency.percentile(99.9)),
        static_cast<unsigned long long>(r.latency.max()), o.tls ? "true" : "false",
        static_cast<unsigned long long>(r.tls_handshakes), static_cast<unsigned long long>(r.tls_resumed),
        static_cast<unsigned long long>(r.tls_tickets), r.tls_info.c_str(),
        static_cast<unsigned long long>(r.compressed_conns));
    return;
  }
  std::printf("%-10s %8s %8s %8s %12s %10s %10s %8s %10s\n", "mode", "conns", "size", "inflight", "msgs/s",
              "MB/s", "connects/s", "errors", "mismatch");
  std::printf("%-10s %8u %8zu %8u %12.0f %10.2f %10.0f %8llu %10llu\n", mode, o.connections, o.size, o.inflight,
              r.messages / secs, r.bytes / secs / 1e6, r.connects / secs,
              static_cast<unsigned long long>(r.errors), static_cast<unsigned long long>(r.mismatches));
  if (r.latency.count()) {
    std::printf("latency us: p50 %llu  p90 %llu  p99 %llu  p99.9 %llu  max %llu  (%llu samples)\n",
                static_cast<unsigned long long>(r.latency.percentile(50)),
                static_cast<unsigned long long>(r.latency.percentile(90)),
                static_cast<unsigned long long>(r.latency.percentile(99)),
                static_cast<unsigned long long>(r.latency.percentile(99.9)),
                static_cast<unsigned long long>(r.latency.max()),
                static_cast<unsigned long long>(r.latency.count()));
  }
  if (o.tls)
    std::printf("tls: %s; measured window: %llu handshakes (%llu resumed), %llu session tickets\n",
                r.tls_info.empty() ? "no handshake" : r.tls_info.c_str(),
                static_cast<unsigned long long>(r.tls_handshakes), static_cast<unsigned long long>(r.tls_resumed),
                static_cast<unsigned long long>(r.tls_tickets));
  if (std::string(mode) == "hold") std::printf("alive: %llu of %u\n", static_cast<unsigned long long>(r.alive), o.connections);
}

int run_echo(const std::string& address, std::uint16_t port, unsigned workers, unsigned delay_ms) {
  std::vector<std::unique_ptr<weir::core::Worker>> ws;
  std::vector<std::unique_ptr<weir::upstream::EchoServer>> echo;
  for (unsigned i = 0; i < workers; ++i) {
    ws.push_back(std::make_unique<weir::core::Worker>(i, 64 * 1024));
    echo.push_back(std::make_unique<weir::upstream::EchoServer>(*ws.back(), address, port));
    port = echo.back()->port();
    echo.back()->set_handshake_delay(std::chrono::milliseconds(delay_ms));
    echo.back()->start();
  }
  std::printf("{\"event\":\"listening\",\"address\":\"%s\",\"port\":%u}\n", address.c_str(), port);
  std::fflush(stdout);
  for (auto& w : ws) w->start();
  boost::asio::io_context io;
  boost::asio::signal_set sig(io, SIGINT, SIGTERM);
  sig.async_wait([&](auto, int) { io.stop(); });
  io.run();
  for (auto& w : ws) w->stop();
  for (auto& w : ws) w->join();
  echo.clear();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"weir-bench: WebSocket load generator and echo backend"};
  app.require_subcommand(1);
  Options o;
  bool json = false;
  std::string url = "ws://127.0.0.1:8080/";
  auto add_common = [&](CLI::App* c) {
    c->add_option("-u,--url", url, "ws://host:port/path or wss://host:port/path");
    c->add_option("-c,--connections", o.connections, "connections");
    c->add_option("-d,--duration", o.duration_s, "measured seconds");
    c->add_option("-w,--warmup", o.warmup_s, "seconds before measuring");
    c->add_option("-t,--threads", o.threads, "client threads");
    c->add_option("-s,--size", o.size, "message payload bytes");
    c->add_flag("--json", json, "one JSON object on stdout");
    c->add_flag("--tls", o.tls, "TLS to the server (wss://); a wss:// URL implies it");
    c->add_option("--ca", o.ca, "verify the server's certificate against this PEM file (default: no verification)");
    c->add_option("--sni", o.sni, "TLS server name to send and verify (default: the URL's host; none for an IP)");
  };
  auto* tp = app.add_subcommand("throughput", "closed loop: P messages in flight per connection");
  add_common(tp);
  tp->add_option("-p,--inflight", o.inflight, "messages in flight per connection");
  tp->add_flag("--deflate", o.deflate, "offer permessage-deflate; compress and inflate where the peer agrees");
  tp->add_flag("--json-messages", o.json, "text messages: a chat-like JSON object of --size bytes (at least 96)");
  auto* lat = app.add_subcommand("latency", "open loop at a fixed total rate; percentiles in us");
  add_common(lat);
  lat->add_option("-r,--rate", o.rate, "messages/s over all connections");
  auto* con = app.add_subcommand("connect", "connect + handshake + one echo + close, in a loop");
  add_common(con);
  con->add_flag("--tls-resume", o.tls_resume, "resume the previous connection's TLS session (ticket) each time");
  auto* hold = app.add_subcommand("hold", "open N idle connections, ping every T s, count survivors");
  add_common(hold);
  hold->add_option("--ping-interval", o.ping_interval_s, "seconds between pings");
  hold->add_option("--source", o.sources, "local source addresses (127.0.0.x) to spread connections");
  auto* echo = app.add_subcommand("echo", "run the echo backend");
  std::string echo_addr = "127.0.0.1";
  std::uint16_t echo_port = 0;
  unsigned echo_workers = 1;
  echo->add_option("-a,--address", echo_addr);
  echo->add_option("-p,--port", echo_port, "0 = any free port (printed)");
  echo->add_option("-n,--workers", echo_workers);
  unsigned echo_delay_ms = 0;
  echo->add_option("--handshake-delay-ms", echo_delay_ms, "answer each upgrade this many ms late (a slow backend)");
  auto* relay = app.add_subcommand("relay", "bare TCP byte relay to --to (the floor bench/compare measures against)");
  std::string relay_addr = "127.0.0.1", relay_to;
  std::uint16_t relay_port = 0;
  relay->add_option("-a,--address", relay_addr);
  relay->add_option("-p,--port", relay_port, "0 = any free port (printed)");
  relay->add_option("--to", relay_to, "upstream IPv4:port")->required();
  CLI11_PARSE(app, argc, argv);

  if (*echo) return run_echo(echo_addr, echo_port, echo_workers, echo_delay_ms);
  if (*relay) {
    const auto colon = relay_to.rfind(':');
    try {
      if (colon == std::string::npos) throw std::runtime_error("relay: --to needs IPv4:port");
      return weir::bench::run_tcp_relay(relay_addr, relay_port, relay_to.substr(0, colon),
                                        static_cast<std::uint16_t>(std::stoi(relay_to.substr(colon + 1))));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "weir-bench: %s\n", e.what());
      return 2;
    }
  }

  // ws://host:port/path or wss://host:port/path
  std::string rest = url;
  if (url.rfind("ws://", 0) == 0) {
    rest = url.substr(5);
  } else if (url.rfind("wss://", 0) == 0) {
    rest = url.substr(6);
    o.tls = true;
  }
  if (o.json && o.size < weir::bench::JsonMessage::kMinSize) {
    std::fprintf(stderr, "--json needs --size %zu or more\n", weir::bench::JsonMessage::kMinSize);
    return 2;
  }
  if (!o.tls && (!o.ca.empty() || !o.sni.empty() || o.tls_resume)) {
    std::fprintf(stderr, "weir-bench: --ca, --sni and --tls-resume need --tls or a wss:// URL\n");
    return 2;
  }
  if (o.tls && o.ca.empty())
    std::fprintf(stderr, "weir-bench: TLS without --ca: the server's certificate is not verified\n");
  const auto slash = rest.find('/');
  o.path = slash == std::string::npos ? "/" : rest.substr(slash);
  const std::string hostport = rest.substr(0, slash);
  const auto colon = hostport.rfind(':');
  o.host = hostport.substr(0, colon);
  o.port = static_cast<std::uint16_t>(colon == std::string::npos ? (o.tls ? 443 : 80)
                                                                  : std::stoi(hostport.substr(colon + 1)));

  Result r;
  const char* mode = "";
  try {
    // Resolved once: wss://localhost:8443/ connects to 127.0.0.1 and sends SNI "localhost".
    boost::asio::io_context io;
    boost::asio::ip::tcp::resolver resolver(io);
    boost::system::error_code ec;
    const auto found = resolver.resolve(boost::asio::ip::tcp::v4(), o.host, "", ec);
    if (ec || found.empty()) throw std::runtime_error(o.host + ": " + ec.message());
    o.address = found.begin()->endpoint().address().to_string();
    if (*tp) r = weir::bench::run_throughput(o), mode = "throughput";
    else if (*lat) r = weir::bench::run_latency(o), mode = "latency";
    else if (*con) r = weir::bench::run_connect(o), mode = "connect";
    else if (*hold) r = weir::bench::run_hold(o), mode = "hold";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "weir-bench: %s\n", e.what());
    return 2;
  }
  print(mode, o, r, json);
  return r.mismatches ? 3 : 0;
}
