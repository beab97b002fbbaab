#include "config/config.h"
#include "config/detail.h"
#include "config/loader.h"
#include "error_of.h"
#include "filters/origin/origin_filter.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace weir::config {
namespace {

using namespace std::chrono_literals;

// The smallest valid file: everything else takes its default.
constexpr const char* kMinimal =
    "listeners:\n"
    "  - port: 8080\n"
    "routes:\n"
    "  - upstreams: echo\n";

using testing::error_of;

// A config whose one route has `route_body` (indented by the caller).
std::string with_route(const std::string& route_body) {
  return "listeners:\n  - port: 8080\nroutes:\n  - " + route_body;
}

// A scratch directory, removed with its contents at the end of the test.
class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("weir-config-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string write(const std::string& name, const std::string& contents) const {
    const auto file = path_ / name;
    std::ofstream(file, std::ios::binary) << contents;
    return file.string();
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

// Sets an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

// ---------------------------------------------------------------- parse_duration

TEST(ConfigParseDuration, AcceptsUnitsAndBareSeconds) {
  EXPECT_EQ(parse_duration("0"), Millis{0});
  EXPECT_EQ(parse_duration("30"), 30s);
  EXPECT_EQ(parse_duration("250ms"), 250ms);
  EXPECT_EQ(parse_duration("10s"), 10s);
  EXPECT_EQ(parse_duration("5m"), 5min);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("0s"), Millis{0});
  EXPECT_EQ(parse_duration("10 s"), 10s);
}

TEST(ConfigParseDuration, AcceptsFractionsThatAreWholeMilliseconds) {
  EXPECT_EQ(parse_duration("1.5s"), 1500ms);
  EXPECT_EQ(parse_duration("1.5"), 1500ms);
  EXPECT_EQ(parse_duration("0.25m"), 15s);
  EXPECT_EQ(parse_duration("0.001s"), 1ms);
  EXPECT_EQ(parse_duration("2.50000000000s"), 2500ms);
  EXPECT_EQ(parse_duration("0.5ms"), std::nullopt);  // below the resolution
  EXPECT_EQ(parse_duration("0.0001s"), std::nullopt);
}

TEST(ConfigParseDuration, RejectsGarbage) {
  for (const char* bad : {"", "-1s", "-5", "+5s", "abc", "10x", "10S", "10sec", "1.", ".5s", "1e3",
                          "s", "10 ", " 10s", "10s ", "1m30s", "0x10"}) {
    EXPECT_EQ(parse_duration(bad), std::nullopt) << bad;
  }
}

TEST(ConfigParseDuration, RejectsOverflow) {
  EXPECT_EQ(parse_duration("99999999999999999999"), std::nullopt);
  EXPECT_EQ(parse_duration("9223372036854775807h"), std::nullopt);
  EXPECT_EQ(parse_duration("9223372036854775807ms"), Millis{9223372036854775807});
}

// ------------------------------------------------------------------- parse_size

TEST(ConfigParseSize, AcceptsBinaryUnits) {
  EXPECT_EQ(parse_size("512"), 512u);
  EXPECT_EQ(parse_size("0"), 0u);
  EXPECT_EQ(parse_size("100B"), 100u);
  for (const char* k : {"4k", "4K", "4KB", "4KiB", "4 KiB"}) EXPECT_EQ(parse_size(k), 4096u) << k;
  for (const char* m : {"16M", "16MB", "16MiB"}) EXPECT_EQ(parse_size(m), 16u << 20) << m;
  for (const char* g : {"1G", "1GB", "1GiB"}) EXPECT_EQ(parse_size(g), 1u << 30) << g;
  EXPECT_EQ(parse_size("18446744073709551615"), 18446744073709551615ull);
}

TEST(ConfigParseSize, RejectsGarbageAndOverflow) {
  for (const char* bad : {"", "-1", "1.5MiB", "8kb", "8KIB", "8mb", "1T", "KiB", "8 ", "8 K B",
                          "18446744073709551616", "17179869184GiB", "0x10"}) {
    EXPECT_EQ(parse_size(bad), std::nullopt) << bad;
  }
}

// --------------------------------------------------------------- parse_upstream

TEST(ConfigParseUpstream, Echo) {
  const auto up = parse_upstream("echo");
  ASSERT_TRUE(up);
  EXPECT_EQ(up->kind, Upstream::Kind::echo);
  EXPECT_EQ(up->text, "echo");
}

TEST(ConfigParseUpstream, HostAndPort) {
  auto up = parse_upstream("127.0.0.1:9000");
  ASSERT_TRUE(up);
  EXPECT_EQ(up->kind, Upstream::Kind::tcp);
  EXPECT_EQ(up->host, "127.0.0.1");
  EXPECT_EQ(up->port, 9000);
  EXPECT_EQ(up->text, "127.0.0.1:9000");

  up = parse_upstream("backend:9001");
  ASSERT_TRUE(up);
  EXPECT_EQ(up->host, "backend");
  EXPECT_EQ(up->port, 9001);

  up = parse_upstream("chat-1.internal_svc.example:65535");
  ASSERT_TRUE(up);
  EXPECT_EQ(up->host, "chat-1.internal_svc.example");
  EXPECT_EQ(up->port, 65535);
}

TEST(ConfigParseUpstream, BracketedIpv6) {
  const auto up = parse_upstream("[::1]:80");
  ASSERT_TRUE(up);
  EXPECT_EQ(up->kind, Upstream::Kind::tcp);
  EXPECT_EQ(up->host, "::1");  // bare, as the resolver wants it
  EXPECT_EQ(up->port, 80);
  EXPECT_EQ(up->text, "[::1]:80");
}

TEST(ConfigParseUpstream, Schemes) {
  auto ws = parse_upstream("ws://a:81");
  ASSERT_TRUE(ws);
  EXPECT_EQ(ws->host, "a");
  EXPECT_EQ(ws->port, 81);
  EXPECT_FALSE(ws->tls);
  auto wss = parse_upstream("wss://backend.internal");
  ASSERT_TRUE(wss);
  EXPECT_EQ(wss->host, "backend.internal");
  EXPECT_EQ(wss->port, 443);
  EXPECT_TRUE(wss->tls);
  EXPECT_EQ(wss->text, "wss://backend.internal");
  auto v6 = parse_upstream("wss://[::1]:9443/");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 9443);
  auto plain = parse_upstream("ws://[::1]");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->port, 80);
  EXPECT_EQ(parse_upstream("wss://echo")->kind, config::Upstream::Kind::tcp);
}

TEST(ConfigParseUpstream, RejectsMalformed) {
  for (const char* bad : {"", "backend", ":80", "backend:", "backend:0", "backend:65536",
                          "backend:80x", "backend:-1", "::1:80", "[::1]80", "[::1]", "[zz]:80",
                          "[::1:80", "ws://", "wss://", "http://a:80", "wss://a:80/x", "a b:80", "a..b:80", ".a:80", "Echo", "echo:"}) {
    EXPECT_EQ(parse_upstream(bad), std::nullopt) << bad;
  }
}

// ------------------------------------------------------------------ ConfigError

TEST(ConfigErrorType, FormatsFileLineColumn) {
  const ConfigError e("a.yaml", 3, 7, "boom");
  EXPECT_STREQ(e.what(), "a.yaml:3:7: boom");
  EXPECT_EQ(e.file, "a.yaml");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.col, 7);
  EXPECT_EQ(e.message, "boom");
}

TEST(ConfigErrorType, CarriesThePositionOfTheOffendingNode) {
  try {
    load_string(with_route("upstreams: echo\n    timout: 5s\n"), "pos.yaml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file, "pos.yaml");
    EXPECT_EQ(e.line, 5);
    EXPECT_EQ(e.col, 5);
    EXPECT_EQ(e.message, "unknown key 'timout' in route (did you mean 'timeouts'?)");
  }
}

// --------------------------------------------------------------------- defaults

TEST(ConfigLoad, MinimalFileTakesEveryDefault) {
  const Config c = load_string(kMinimal, "t.yaml");
  EXPECT_EQ(c.source, "t.yaml");
  EXPECT_EQ(c.workers, 0u);
  EXPECT_EQ(c.drain, 10s);
  EXPECT_EQ(c.log_level, "info");
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].port, 8080);

  ASSERT_EQ(c.routes.size(), 1u);
  const Route& r = c.routes[0];
  EXPECT_EQ(r.name, "route1");
  EXPECT_EQ(r.match.host, "");
  EXPECT_EQ(r.match.path, "/");
  EXPECT_TRUE(r.match.path_prefix);
  EXPECT_TRUE(r.match.headers.empty());
  ASSERT_EQ(r.upstreams.size(), 1u);
  EXPECT_EQ(r.upstreams[0].kind, Upstream::Kind::echo);
  EXPECT_TRUE(r.filters.empty());
  EXPECT_FALSE(r.remask);

  EXPECT_EQ(r.timeouts.handshake, 10s);
  EXPECT_EQ(r.timeouts.connect, 5s);
  EXPECT_EQ(r.timeouts.upstream_handshake, 10s);
  EXPECT_EQ(r.timeouts.idle, 300s);
  EXPECT_EQ(r.timeouts.max_lifetime, 0s);
  EXPECT_EQ(r.timeouts.close, 5s);
  EXPECT_EQ(r.limits.max_header_bytes, 8u * 1024);
  EXPECT_EQ(r.limits.max_frame_bytes, 16ull << 20);
  EXPECT_EQ(r.limits.max_message_bytes, 64ull << 20);
  EXPECT_EQ(r.limits.buffer_bytes, 64u * 1024);
  EXPECT_EQ(r.keepalive.interval, 0s);
  EXPECT_EQ(r.keepalive.timeout, 10s);
}

TEST(ConfigLoad, EmptySectionsMeanDefaults) {
  const Config c = load_string(std::string(kMinimal) + "timeouts:\nlimits: {}\nlog:\n", "t.yaml");
  EXPECT_EQ(c.routes[0].timeouts.idle, 300s);
  EXPECT_EQ(c.log_level, "info");
}

TEST(ConfigLoad, EveryTopLevelKey) {
  const Config c = load_string(
      "workers: 4\n"
      "listeners:\n"
      "  - address: 0.0.0.0\n"
      "    port: 80\n"
      "  - address: '::1'\n"
      "    port: 0\n"
      "  - {address: '::', port: 0}\n"
      "timeouts:\n"
      "  handshake: 2s\n"
      "  connect: 1500ms\n"
      "  upstream_handshake: 3s\n"
      "  idle: 0\n"
      "  max_lifetime: 1h\n"
      "  close: 1s\n"
      "limits:\n"
      "  max_header_bytes: 16KiB\n"
      "  max_frame_bytes: 1MiB\n"
      "  max_message_bytes: 125\n"
      "  buffer_bytes: 4KiB\n"
      "keepalive:\n"
      "  interval: 20s\n"
      "  timeout: 5s\n"
      "shutdown:\n"
      "  drain: 0\n"
      "log:\n"
      "  level: debug\n"
      "routes:\n"
      "  - upstreams: echo\n",
      "t.yaml");
  EXPECT_EQ(c.workers, 4u);
  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[0].address, "0.0.0.0");
  EXPECT_EQ(c.listeners[0].port, 80);
  EXPECT_EQ(c.listeners[1].address, "::1");
  EXPECT_EQ(c.listeners[1].port, 0);
  EXPECT_EQ(c.listeners[2].address, "::");
  EXPECT_EQ(c.drain, 0s);
  EXPECT_EQ(c.log_level, "debug");
  const Route& r = c.routes[0];
  EXPECT_EQ(r.timeouts.handshake, 2s);
  EXPECT_EQ(r.timeouts.connect, 1500ms);
  EXPECT_EQ(r.timeouts.upstream_handshake, 3s);
  EXPECT_EQ(r.timeouts.idle, 0s);
  EXPECT_EQ(r.timeouts.max_lifetime, 1h);
  EXPECT_EQ(r.timeouts.close, 1s);
  EXPECT_EQ(r.limits.max_header_bytes, 16u * 1024);
  EXPECT_EQ(r.limits.max_frame_bytes, 1u << 20);
  EXPECT_EQ(r.limits.max_message_bytes, 125u);
  EXPECT_EQ(r.limits.buffer_bytes, 4096u);
  EXPECT_EQ(r.keepalive.interval, 20s);
  EXPECT_EQ(r.keepalive.timeout, 5s);
}

TEST(ConfigLoad, WorkersAutoOrCount) {
  EXPECT_EQ(load_string(std::string(kMinimal) + "workers: auto\n", "t").workers, 0u);
  EXPECT_EQ(load_string(std::string(kMinimal) + "workers: 1\n", "t").workers, 1u);
  EXPECT_EQ(load_string(std::string(kMinimal) + "workers: 256\n", "t").workers, 256u);
  const std::string rule = "'workers' must be 'auto' or an integer 1-256";
  EXPECT_EQ(error_of(std::string(kMinimal) + "workers: 0\n"), "t.yaml:5:10: " + rule);
  EXPECT_EQ(error_of(std::string(kMinimal) + "workers: 257\n"), "t.yaml:5:10: " + rule);
  EXPECT_EQ(error_of(std::string(kMinimal) + "workers: many\n"), "t.yaml:5:10: " + rule);
  EXPECT_EQ(error_of(std::string(kMinimal) + "workers: [1]\n"),
            "t.yaml:5:10: " + rule + ", got a list");
}

// -------------------------------------------------------------------- overrides

TEST(ConfigLoad, RouteOverridesStartFromTopLevelWhereverItIs) {
  // The top-level sections come after the routes: they must still apply.
  const Config c = load_string(
      "listeners: [{port: 8080}]\n"
      "routes:\n"
      "  - name: a\n"
      "    match: {path: /a}\n"
      "    upstreams: echo\n"
      "    timeouts:\n"
      "      idle: 1m\n"
      "    limits:\n"
      "      max_frame_bytes: 1KiB\n"
      "    keepalive:\n"
      "      timeout: 2s\n"
      "  - name: b\n"
      "    upstreams: echo\n"
      "timeouts:\n"
      "  idle: 10s\n"
      "  connect: 2s\n"
      "limits:\n"
      "  max_frame_bytes: 2KiB\n"
      "  max_message_bytes: 8KiB\n"
      "keepalive:\n"
      "  interval: 15s\n",
      "t.yaml");
  ASSERT_EQ(c.routes.size(), 2u);
  const Route& a = c.routes[0];
  EXPECT_EQ(a.timeouts.idle, 1min);   // the route's own
  EXPECT_EQ(a.timeouts.connect, 2s);  // the top level's
  EXPECT_EQ(a.timeouts.close, 5s);    // the built-in default
  EXPECT_EQ(a.limits.max_frame_bytes, 1024u);
  EXPECT_EQ(a.limits.max_message_bytes, 8192u);
  EXPECT_EQ(a.keepalive.interval, 15s);
  EXPECT_EQ(a.keepalive.timeout, 2s);
  const Route& b = c.routes[1];
  EXPECT_EQ(b.timeouts.idle, 10s);
  EXPECT_EQ(b.limits.max_frame_bytes, 2048u);
  EXPECT_EQ(b.keepalive.timeout, 10s);
}

TEST(ConfigLoad, HandshakeLimitsAreTopLevelOnly) {
  // Read before a route is chosen, so a per-route value could never apply.
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    timeouts:\n      handshake: 1s\n")),
            "t.yaml:6:7: 'timeouts.handshake' cannot be set per route (the request is read "
            "before a route is chosen); set it in the top-level 'timeouts'");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    limits: {max_header_bytes: 1KiB}\n")),
            "t.yaml:5:14: 'limits.max_header_bytes' cannot be set per route (the request is "
            "read before a route is chosen); set it in the top-level 'limits'");
}

// ------------------------------------------------------------------------ route

TEST(ConfigLoad, RouteFields) {
  const Config c = load_string(
      "listeners: [{port: 8080}]\n"
      "routes:\n"
      "  - name: chat\n"
      "    match:\n"
      "      host: Chat.Example.COM\n"
      "      path: /chat\n"
      "      headers:\n"
      "        X-Tenant: Blue\n"
      "        Sec-Custom: ''\n"
      "    upstreams: [127.0.0.1:9000, \"backend:9001\", echo, '[::1]:9002']\n"
      "    origins: [HTTPS://Chat.Example.com, 'http://localhost:3000', '*', 'null']\n"
      "    remask: true\n",
      "t.yaml");
  const Route& r = c.routes[0];
  EXPECT_EQ(r.name, "chat");
  EXPECT_EQ(r.match.host, "chat.example.com");
  EXPECT_EQ(r.match.path, "/chat");
  EXPECT_FALSE(r.match.path_prefix);
  ASSERT_EQ(r.match.headers.size(), 2u);
  EXPECT_EQ(r.match.headers[0].name, "x-tenant");
  EXPECT_EQ(r.match.headers[0].value, "Blue");  // values stay case-sensitive
  EXPECT_EQ(r.match.headers[1].name, "sec-custom");
  EXPECT_EQ(r.match.headers[1].value, "");
  ASSERT_EQ(r.upstreams.size(), 4u);
  EXPECT_EQ(r.upstreams[0].host, "127.0.0.1");
  EXPECT_EQ(r.upstreams[0].port, 9000);
  EXPECT_EQ(r.upstreams[1].host, "backend");
  EXPECT_EQ(r.upstreams[1].text, "backend:9001");
  EXPECT_EQ(r.upstreams[2].kind, Upstream::Kind::echo);
  EXPECT_EQ(r.upstreams[3].host, "::1");
  ASSERT_EQ(r.filters.size(), 1u);
  EXPECT_EQ(r.filters[0]->key, "origins");
  EXPECT_EQ(dynamic_cast<const filters::OriginFilter&>(*r.filters[0]).allowed(),
            (std::vector<std::string>{"https://chat.example.com", "http://localhost:3000", "*", "null"}));
  EXPECT_TRUE(r.remask);
}

TEST(ConfigLoad, PathPrefixAndSingleUpstreamScalar) {
  const Config c =
      load_string(with_route("match: {path_prefix: /api/}\n    upstreams: backend:9000\n"), "t");
  EXPECT_EQ(c.routes[0].match.path, "/api/");
  EXPECT_TRUE(c.routes[0].match.path_prefix);
  ASSERT_EQ(c.routes[0].upstreams.size(), 1u);
  EXPECT_EQ(c.routes[0].upstreams[0].host, "backend");
}

TEST(ConfigLoad, WildcardHostIsLowerCased) {
  EXPECT_EQ(load_string(with_route("match: {host: '*.Example.COM'}\n    upstreams: echo\n"), "t")
                .routes[0]
                .match.host,
            "*.example.com");
  // "*" alone means any host, like no host at all.
  EXPECT_EQ(load_string(with_route("match: {host: '*'}\n    upstreams: echo\n"), "t")
                .routes[0]
                .match.host,
            "");
}

TEST(ConfigLoad, DefaultRouteNamesAreNumberedFromOne) {
  const Config c = load_string(
      "listeners: [{port: 1}]\n"
      "routes:\n"
      "  - {match: {path: /a}, upstreams: echo}\n"
      "  - {name: named, match: {path: /b}, upstreams: echo}\n"
      "  - {match: {path: /c}, upstreams: echo}\n",
      "t");
  EXPECT_EQ(c.routes[0].name, "route1");
  EXPECT_EQ(c.routes[1].name, "named");
  EXPECT_EQ(c.routes[2].name, "route3");
}

TEST(ConfigLoad, RemaskAcceptsOnlyTrueAndFalse) {
  EXPECT_FALSE(
      load_string(with_route("upstreams: echo\n    remask: false\n"), "t").routes[0].remask);
  EXPECT_TRUE(load_string(with_route("upstreams: echo\n    remask: TRUE\n"), "t").routes[0].remask);
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    remask: yes\n")),
            "t.yaml:5:13: 'remask' must be true or false, got 'yes'");
}

// ---------------------------------------------------------------------- errors

TEST(ConfigErrors, UnknownKeys) {
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    timout: 5s\n")),
            "t.yaml:5:5: unknown key 'timout' in route (did you mean 'timeouts'?)");
  EXPECT_EQ(error_of(std::string(kMinimal) + "banana: 1\n"),
            "t.yaml:5:1: unknown key 'banana' at top level");
  EXPECT_EQ(error_of(std::string(kMinimal) + "timeouts:\n  idel: 5s\n"),
            "t.yaml:6:3: unknown key 'idel' in timeouts (did you mean 'idle'?)");
  EXPECT_EQ(error_of("listeners:\n  - port: 1\n    adress: ::1\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:3:5: unknown key 'adress' in listener (did you mean 'address'?)");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    match: {paht: /x}\n")),
            "t.yaml:5:13: unknown key 'paht' in match (did you mean 'path'?)");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    limits:\n      frame: 1\n")),
            "t.yaml:6:7: unknown key 'frame' in limits");
  EXPECT_EQ(error_of(std::string(kMinimal) + "log: {lvl: info}\n"),
            "t.yaml:5:7: unknown key 'lvl' in log (did you mean 'level'?)");
  EXPECT_EQ(error_of(std::string(kMinimal) + "shutdown: {grace: 1s}\n"),
            "t.yaml:5:12: unknown key 'grace' in shutdown");
  EXPECT_EQ(error_of(std::string(kMinimal) + "keepalive: {intreval: 1s}\n"),
            "t.yaml:5:13: unknown key 'intreval' in keepalive (did you mean 'interval'?)");
}

TEST(ConfigErrors, DuplicateKey) {
  EXPECT_EQ(error_of("listeners:\n  - port: 1\n    port: 2\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:3:5: duplicate key 'port' in listener");
}

TEST(ConfigErrors, MissingRequiredKeysPointAtTheMapping) {
  EXPECT_EQ(error_of("routes: [{upstreams: echo}]\n"),
            "t.yaml:1:1: missing required key 'listeners' at top level");
  EXPECT_EQ(error_of("workers: 2\nlisteners: [{port: 1}]\n"),
            "t.yaml:1:1: missing required key 'routes' at top level");
  EXPECT_EQ(error_of("listeners:\n  - address: ::1\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:2:5: missing required key 'port' in listener");
  EXPECT_EQ(error_of(with_route("name: x\n    match: {path: /}\n")),
            "t.yaml:4:5: missing required key 'upstreams' (or 'upstream_group') in route");
}

TEST(ConfigErrors, EmptyLists) {
  EXPECT_EQ(error_of("listeners: [{port: 1}]\nroutes: []\n"),
            "t.yaml:2:9: 'routes' must not be empty (add at least one route)");
  EXPECT_EQ(error_of("listeners: []\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:1:12: 'listeners' must not be empty (add at least one listener)");
  EXPECT_EQ(error_of(with_route("upstreams: []\n")),
            "t.yaml:4:16: 'upstreams' must not be empty (add at least one host:port, or echo)");
  // An empty value points at its key (yaml-cpp would point at the next line).
  EXPECT_EQ(error_of("listeners: [{port: 1}]\nroutes:\n"),
            "t.yaml:2:1: 'routes' must be a list, got an empty value");
  // A bare "-" is blamed on its list, by number.
  EXPECT_EQ(error_of("listeners: [{port: 1}]\nroutes:\n  - upstreams: echo\n  -\n"),
            "t.yaml:3:3: entry 2 of 'routes' must be a mapping with at least 'upstreams', got an "
            "empty value");
  EXPECT_EQ(error_of(with_route("upstreams:\n      - echo\n      -\n")),
            "t.yaml:5:7: entry 2 of 'upstreams' must be host:port, [IPv6]:port, ws://host:port, wss://host:port or echo (or a mapping with 'address'), got an empty value");
}

TEST(ConfigErrors, WrongTypes) {
  EXPECT_EQ(error_of(std::string(kMinimal) + "timeouts: [1, 2]\n"),
            "t.yaml:5:11: 'timeouts' must be a mapping, got a list");
  EXPECT_EQ(error_of(std::string(kMinimal) + "limits: 10\n"),
            "t.yaml:5:9: 'limits' must be a mapping, got '10'");
  EXPECT_EQ(error_of("listeners: {port: 1}\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:1:12: 'listeners' must be a list, got a mapping");
  EXPECT_EQ(error_of("listeners: [8080]\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:1:13: each entry of 'listeners' must be a mapping with 'address' and 'port', "
            "got '8080'");
  EXPECT_EQ(error_of("listeners: [{port: 1}]\nroutes: [echo]\n"),
            "t.yaml:2:10: each entry of 'routes' must be a mapping with at least 'upstreams', got "
            "'echo'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "timeouts:\n  idle: {a: 1}\n"),
            "t.yaml:6:9: 'timeouts.idle' must be a duration such as 10s, got a mapping");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    name: [a]\n")),
            "t.yaml:5:11: 'name' must be a string, got a list");
  EXPECT_EQ(error_of(with_route("upstreams: {a: b}\n")),
            "t.yaml:4:16: 'upstreams' must be a list, got a mapping");
  EXPECT_EQ(error_of(with_route("upstreams: [[a]]\n")),
            "t.yaml:4:17: each entry of 'upstreams' must be host:port, [IPv6]:port, ws://host:port, wss://host:port or echo (or a mapping with 'address'), got a list");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    match: /chat\n")),
            "t.yaml:5:12: 'match' must be a mapping, got '/chat'");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    match: {headers: [a]}\n")),
            "t.yaml:5:22: 'match.headers' must be a mapping, got a list");
  EXPECT_EQ(error_of(std::string(kMinimal) + "? [a]\n: 1\n"),
            "t.yaml:5:3: a key at top level must be a plain word, got a list");
  EXPECT_EQ(error_of("- a\n- b\n"),
            "t.yaml:1:1: the configuration must be a mapping with 'listeners' and 'routes', got "
            "a list");
}

TEST(ConfigErrors, Port) {
  const std::string rule = "'port' must be an integer 1-65535 (0 = any free port)";
  EXPECT_EQ(error_of("listeners:\n  - port: 65536\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:2:11: " + rule);
  EXPECT_EQ(error_of("listeners:\n  - port: http\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:2:11: " + rule);
  EXPECT_EQ(error_of("listeners:\n  - port: -1\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:2:11: " + rule);
  EXPECT_EQ(error_of("listeners:\n  - port: {a: 1}\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:2:11: " + rule + ", got a mapping");
  // An empty value is reported at its key.
  EXPECT_EQ(error_of("listeners:\n  - port:\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:2:5: " + rule + ", got an empty value");
}

TEST(ConfigErrors, ListenerAddress) {
  EXPECT_EQ(
      error_of("listeners:\n  - address: localhost\n    port: 1\nroutes: [{upstreams: echo}]\n"),
      "t.yaml:2:14: 'address' must be an IPv4 or IPv6 address literal such as 127.0.0.1, "
      "0.0.0.0 or ::1, got 'localhost'");
  EXPECT_EQ(error_of("listeners:\n  - {address: '[::1]', port: 1}\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:2:15: 'address' must be an IPv4 or IPv6 address literal such as 127.0.0.1, "
            "0.0.0.0 or ::1, got '[::1]'");
}

TEST(ConfigErrors, DuplicateListener) {
  EXPECT_EQ(error_of("listeners:\n"
                     "  - {address: '::1', port: 80}\n"
                     "  - {address: '0:0::1', port: 80}\n"
                     "routes: [{upstreams: echo}]\n"),
            "t.yaml:3:5: duplicate listener 0:0::1 port 80 (first at line 2)");
  // Port 0 picks a fresh port each time, so repeating it is fine.
  EXPECT_EQ(load_string("listeners: [{port: 0}, {port: 0}]\nroutes: [{upstreams: echo}]\n", "t")
                .listeners.size(),
            2u);
}

TEST(ConfigErrors, Durations) {
  EXPECT_EQ(error_of(std::string(kMinimal) + "timeouts:\n  idle: abc\n"),
            "t.yaml:6:9: invalid duration 'abc' for 'timeouts.idle' (use e.g. 500ms, 10s, 5m)");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    timeouts: {close: -1s}\n")),
            "t.yaml:5:23: invalid duration '-1s' for 'timeouts.close' (use e.g. 500ms, 10s, 5m)");
  EXPECT_EQ(error_of(std::string(kMinimal) + "timeouts: {connect: 0}\n"),
            "t.yaml:5:21: 'timeouts.connect' must be greater than 0");
  EXPECT_EQ(error_of(std::string(kMinimal) + "keepalive: {timeout: 0ms}\n"),
            "t.yaml:5:22: 'keepalive.timeout' must be greater than 0");
  EXPECT_EQ(error_of(std::string(kMinimal) + "shutdown:\n  drain: 10 seconds\n"),
            "t.yaml:6:10: invalid duration '10 seconds' for 'shutdown.drain' (use e.g. 500ms, "
            "10s, 5m)");
}

TEST(ConfigErrors, Sizes) {
  EXPECT_EQ(error_of(std::string(kMinimal) + "limits:\n  max_frame_bytes: lots\n"),
            "t.yaml:6:20: invalid size 'lots' for 'limits.max_frame_bytes' (use e.g. 4096, 64KiB, "
            "16MiB)");
  EXPECT_EQ(error_of(std::string(kMinimal) + "limits:\n  max_header_bytes: 100\n"),
            "t.yaml:6:21: 'limits.max_header_bytes' must be between 256 B and 1 MiB, got '100'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "limits:\n  max_header_bytes: 2MiB\n"),
            "t.yaml:6:21: 'limits.max_header_bytes' must be between 256 B and 1 MiB, got '2MiB'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "limits:\n  max_frame_bytes: 124\n"),
            "t.yaml:6:20: 'limits.max_frame_bytes' must be at least 125 B (the largest control "
            "frame), got '124'");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    limits: {max_message_bytes: 1}\n")),
            "t.yaml:5:33: 'limits.max_message_bytes' must be at least 125 B (the largest control "
            "frame), got '1'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "limits:\n  buffer_bytes: 1KiB\n"),
            "t.yaml:6:17: 'limits.buffer_bytes' must be between 4 KiB and 16 MiB, got '1KiB'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "limits:\n  buffer_bytes: 17MiB\n"),
            "t.yaml:6:17: 'limits.buffer_bytes' must be between 4 KiB and 16 MiB, got '17MiB'");
  // A frame limit above the message limit is allowed (the message limit wins).
  EXPECT_EQ(error_of(std::string(kMinimal) +
                     "limits: {max_frame_bytes: 1MiB, max_message_bytes: 1KiB}\n"),
            "no error");
}

TEST(ConfigErrors, LogLevel) {
  EXPECT_EQ(error_of(std::string(kMinimal) + "log:\n  level: verbose\n"),
            "t.yaml:6:10: 'log.level' must be one of debug, info, warn, error, got 'verbose'");
}

TEST(ConfigErrors, Match) {
  EXPECT_EQ(
      error_of(with_route("upstreams: echo\n    match:\n      path: /a\n      path_prefix: /b\n")),
      "t.yaml:7:7: use either 'match.path' or 'match.path_prefix', not both");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    match: {path: chat}\n")),
            "t.yaml:5:19: 'match.path' must start with '/', got 'chat'");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    match: {path_prefix: '/a?b=1'}\n")),
            "t.yaml:5:26: 'match.path_prefix' must not contain '?' or '#' (only the path is "
            "matched), got '/a?b=1'");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    match: {host: 'chat.example.com:443'}\n")),
            "t.yaml:5:19: 'match.host' must be a host name such as chat.example.com or "
            "*.example.com (no port), got 'chat.example.com:443'");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    match: {host: 'api.*.com'}\n")),
            "t.yaml:5:19: 'match.host' must be a host name such as chat.example.com or "
            "*.example.com (no port), got 'api.*.com'");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    match:\n      headers:\n        X-A: 1\n"
                                "        x-a: 2\n")),
            "t.yaml:8:9: header 'x-a' appears twice in match.headers (names ignore case)");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    match:\n      headers:\n        'X A': 1\n")),
            "t.yaml:7:9: invalid header name 'X A' in match.headers");
}

TEST(ConfigErrors, Upstreams) {
  // Inside a flow list the column is the entry's own.
  EXPECT_EQ(error_of(with_route("upstreams: [echo, backend]\n")),
            "t.yaml:4:23: invalid upstream 'backend' (use host:port, [IPv6]:port, ws://host:port, wss://host:port or echo)");
  EXPECT_EQ(error_of(with_route("upstreams: '::1:80'\n")),
            "t.yaml:4:16: invalid upstream '::1:80' (use host:port, [IPv6]:port, ws://host:port, wss://host:port or echo)");
}

TEST(ConfigErrors, Origins) {
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    origins: ['https://a.example/']\n")),
            "t.yaml:5:15: invalid origin 'https://a.example/' (use scheme://host[:port] with no "
            "path, e.g. https://chat.example.com, scheme://*.domain for its subdomains, or '*')");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    origins: [example.com]\n")),
            "t.yaml:5:15: invalid origin 'example.com' (use scheme://host[:port] with no path, "
            "e.g. https://chat.example.com, scheme://*.domain for its subdomains, or '*')");
}

TEST(ConfigErrors, RouteNames) {
  EXPECT_EQ(error_of("listeners: [{port: 1}]\n"
                     "routes:\n"
                     "  - name: chat\n"
                     "    match: {path: /a}\n"
                     "    upstreams: echo\n"
                     "  - name: chat\n"
                     "    match: {path: /b}\n"
                     "    upstreams: echo\n"),
            "t.yaml:6:11: duplicate route name 'chat' (first at line 3)");
  // A chosen name may collide with a default one.
  EXPECT_EQ(error_of("listeners: [{port: 1}]\n"
                     "routes:\n"
                     "  - {match: {path: /a}, upstreams: echo}\n"
                     "  - {name: route1, match: {path: /b}, upstreams: echo}\n"),
            "t.yaml:4:12: duplicate route name 'route1' (first at line 3)");
  EXPECT_EQ(error_of(with_route("name: 'my route'\n    upstreams: echo\n")),
            "t.yaml:4:11: 'name' must be 1-64 letters, digits, '-', '_' or '.', got 'my route'");
}

TEST(ConfigErrors, IdenticalMatches) {
  EXPECT_EQ(error_of("listeners: [{port: 1}]\n"
                     "routes:\n"
                     "  - name: a\n"
                     "    upstreams: echo\n"
                     "  - name: b\n"
                     "    match: {path_prefix: /}\n"
                     "    upstreams: echo\n"),
            "t.yaml:6:5: route 'b' matches exactly the same requests as route 'a' (line 3); "
            "remove one or make the matches differ");
  // Same path but different headers, or exact vs prefix: both are reachable.
  EXPECT_EQ(error_of("listeners: [{port: 1}]\n"
                     "routes:\n"
                     "  - {match: {path: /a, headers: {x-t: blue}}, upstreams: echo}\n"
                     "  - {match: {path: /a}, upstreams: echo}\n"
                     "  - {match: {path_prefix: /a}, upstreams: echo}\n"),
            "no error");
}

TEST(ConfigErrors, YamlSyntaxErrorPosition) {
  // yaml-cpp reports where it noticed the problem: the token after the
  // unclosed '[' ...
  EXPECT_EQ(error_of("listeners: [{port: 1}\nroutes: []\n"),
            "t.yaml:2:1: YAML syntax error: end of sequence flow not found");
  // ... or the misplaced ':'.
  EXPECT_EQ(error_of("listeners: 1\n  routes: 2\n"),
            "t.yaml:2:9: YAML syntax error: illegal map value");
  EXPECT_EQ(error_of("listeners:\n  - port: 1\n   bad: 2\n"),
            "t.yaml:3:4: YAML syntax error: end of sequence not found");
}

TEST(ConfigErrors, EmptyAndMultipleDocuments) {
  EXPECT_EQ(error_of(""),
            "t.yaml:1:1: the configuration is empty; it needs at least 'listeners' and 'routes'");
  EXPECT_EQ(error_of("# only a comment\n"),
            "t.yaml:1:1: the configuration is empty; it needs at least 'listeners' and 'routes'");
  EXPECT_EQ(error_of(std::string(kMinimal) + "---\nworkers: 2\n"),
            "t.yaml:6:1: only one YAML document is allowed (found a second '---')");
  // yaml-cpp closes the first document early on this (the stray ')' lines)
  // and reads the rest as more documents; there is no '---' to blame.
  EXPECT_EQ(error_of("- macro: x\n  condition:\n    (a in (\n\"/x\"\n    )  )\n    )\n"),
            "t.yaml:4:1: YAML syntax error: unexpected text after the end of the document");
}

// YAML::LoadAll (yaml-cpp 0.7) never returns on this input: its parser stops
// advancing and LoadAll collects empty documents until memory runs out (the
// fuzz_config timeout in CI). The loader asks for two documents at most.
TEST(ConfigYamlGuard, FirstDocumentEndsWhereLoadAllLoops) {
  const std::string yaml =
      "- macro: exclude_commands\n"
      "  condition:\n"
      "    (user.uid = 1001 and proc.args in (\n"
      "\"/usr/local/bin/script_metrics.sh\",\n"
      "    \"-c rsync\"\n"
      "    )  )  \n"
      "    )";
  const detail::FirstDocument doc = detail::load_first_document(yaml);
  ASSERT_TRUE(doc.second.has_value());
  EXPECT_FALSE(doc.second_is_marker);
  EXPECT_TRUE(doc.root.IsSequence());
  // The comma pre-scan refuses it too, first, with a better message.
  EXPECT_EQ(error_of(yaml), "t.yaml:4:35: unexpected ',' outside a [ ] or { } list (quote the value if the comma is part of it)");
}

// ----------------------------------------------------------------- substitution

TEST(ConfigSubstitution, EnvironmentVariables) {
  ScopedEnv port("WEIR_TEST_PORT", "9001");
  ScopedEnv host("WEIR_TEST_HOST", "backend");
  const Config c = load_string(
      "listeners: [{port: '${WEIR_TEST_PORT}'}]\n"
      "routes:\n"
      "  - upstreams: ${WEIR_TEST_HOST}:${WEIR_TEST_PORT}\n"
      "    match: {headers: {x-key: \"k-${WEIR_TEST_HOST}\"}}\n",
      "t");
  EXPECT_EQ(c.listeners[0].port, 9001);
  EXPECT_EQ(c.routes[0].upstreams[0].host, "backend");
  EXPECT_EQ(c.routes[0].upstreams[0].port, 9001);
  EXPECT_EQ(c.routes[0].upstreams[0].text, "backend:9001");
  EXPECT_EQ(c.routes[0].match.headers[0].value, "k-backend");
}

TEST(ConfigSubstitution, Defaults) {
  ScopedEnv unset("WEIR_TEST_UNSET", nullptr);
  ScopedEnv empty("WEIR_TEST_EMPTY", "");
  ScopedEnv set("WEIR_TEST_SET", "7000");
  const Config c = load_string(
      "listeners:\n"
      "  - port: ${WEIR_TEST_UNSET:-8081}\n"
      "  - port: ${WEIR_TEST_EMPTY:-8082}\n"
      "  - port: ${WEIR_TEST_SET:-8083}\n"
      "routes: [{upstreams: echo}]\n",
      "t");
  EXPECT_EQ(c.listeners[0].port, 8081);
  EXPECT_EQ(c.listeners[1].port, 8082);  // ':-' also covers an empty variable
  EXPECT_EQ(c.listeners[2].port, 7000);
}

TEST(ConfigSubstitution, UnsetVariableIsAnErrorAtItsScalar) {
  ScopedEnv unset("WEIR_TEST_UNSET", nullptr);
  EXPECT_EQ(error_of("listeners:\n  - port: ${WEIR_TEST_UNSET}\nroutes: [{upstreams: echo}]\n"),
            "t.yaml:2:11: 'port': environment variable 'WEIR_TEST_UNSET' is not set (use "
            "${WEIR_TEST_UNSET:-default} to give a default)");
}

TEST(ConfigSubstitution, SyntaxErrors) {
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    name: ${OOPS\n")),
            "t.yaml:5:11: 'name': unterminated '${' (write '$${' for a literal '${')");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    name: ${1X}\n")),
            "t.yaml:5:11: 'name': invalid variable name '1X' in '${1X}' (letters, digits and '_'; "
            "or ${file:PATH})");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    name: ${}\n")),
            "t.yaml:5:11: 'name': invalid variable name '' in '${}' (letters, digits and '_'; or "
            "${file:PATH})");
}

TEST(ConfigSubstitution, LiteralDollars) {
  const Config c = load_string(
      with_route("upstreams: echo\n    match: {headers: {x-a: 'p$ss', x-b: '$${NOT_A_VAR}'}}\n"),
      "t");
  EXPECT_EQ(c.routes[0].match.headers[0].value, "p$ss");
  EXPECT_EQ(c.routes[0].match.headers[1].value, "${NOT_A_VAR}");
}

TEST(ConfigSubstitution, NotInKeysAndNotRescanned) {
  ScopedEnv inner("WEIR_TEST_INNER", "${WEIR_TEST_UNSET}");
  ScopedEnv unset("WEIR_TEST_UNSET", nullptr);
  const Config c = load_string(
      with_route("upstreams: echo\n    match: {headers: {x-a: '${WEIR_TEST_INNER}'}}\n"), "t");
  EXPECT_EQ(c.routes[0].match.headers[0].value, "${WEIR_TEST_UNSET}");
  // A key is never substituted, so "${...}" as a key is an unknown key.
  EXPECT_EQ(error_of(std::string(kMinimal) + "${WEIR_TEST_INNER}: 1\n"),
            "t.yaml:5:1: unknown key '${WEIR_TEST_INNER}' at top level");
}

TEST(ConfigSubstitution, FileContents) {
  TempDir dir;
  const std::string secret = dir.write("token", "s3cret\n");
  const std::string crlf = dir.write("crlf", "line\r\n");
  const std::string two = dir.write("two", "a\n\n");
  const Config c = load_string(with_route("upstreams: echo\n    match:\n      headers:\n"
                                          "        x-token: ${file:" +
                                          secret +
                                          "}\n"
                                          "        x-crlf: ${file:" +
                                          crlf +
                                          "}\n"
                                          "        x-two: '${file:" +
                                          two + "}'\n"),
                               "t");
  EXPECT_EQ(c.routes[0].match.headers[0].value, "s3cret");
  EXPECT_EQ(c.routes[0].match.headers[1].value, "line");
  EXPECT_EQ(c.routes[0].match.headers[2].value, "a\n");  // only one newline is stripped
}

TEST(ConfigSubstitution, UnreadableFileIsAnError) {
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    name: ${file:/nonexistent/weir/x}\n")),
            "t.yaml:5:11: 'name': cannot read '/nonexistent/weir/x' for "
            "'${file:/nonexistent/weir/x}': No such file or directory");
  EXPECT_EQ(error_of(with_route("upstreams: echo\n    name: ${file:}\n")),
            "t.yaml:5:11: 'name': '${file:}' needs a path, e.g. ${file:/run/secrets/token}");
}

TEST(ConfigSubstitution, RelativeFileIsTakenFromTheConfigDirectory) {
  TempDir dir;
  dir.write("name.txt", "from-file\n");
  const std::string path =
      dir.write("weir.yaml", with_route("upstreams: echo\n    name: ${file:name.txt}\n"));
  EXPECT_EQ(load_file(path).routes[0].name, "from-file");
}

// -------------------------------------------------------------------- load_file

TEST(ConfigLoadFile, ReadsAFile) {
  TempDir dir;
  const std::string path = dir.write("weir.yaml", kMinimal);
  const Config c = load_file(path);
  EXPECT_EQ(c.source, path);
  EXPECT_EQ(c.routes.size(), 1u);
}

TEST(ConfigLoadFile, ErrorsNameTheFile) {
  TempDir dir;
  const std::string path = dir.write("bad.yaml", "listeners: [{port: 1}]\nroutes: []\n");
  EXPECT_THROW(
      {
        try {
          load_file(path);
        } catch (const ConfigError& e) {
          EXPECT_EQ(std::string(e.what()),
                    path + ":2:9: 'routes' must not be empty (add at least one route)");
          throw;
        }
      },
      ConfigError);
}

TEST(ConfigLoadFile, MissingOrUnreadable) {
  try {
    load_file("/nonexistent/weir.yaml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "/nonexistent/weir.yaml:0:0: cannot read file: No such file or directory");
    EXPECT_EQ(e.line, 0);
    EXPECT_EQ(e.col, 0);
  }
  TempDir dir;
  try {
    load_file(dir.path().string());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              dir.path().string() + ":0:0: cannot read file: Is a directory");
  }
}

// ----------------------------------------------------------------------- others

TEST(ConfigDemo, EchoOnEveryPath) {
  const Config c = demo_config(9999);
  EXPECT_EQ(c.source, "<demo>");
  EXPECT_EQ(c.workers, 0u);
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].port, 9999);
  ASSERT_EQ(c.routes.size(), 1u);
  const Route& r = c.routes[0];
  EXPECT_EQ(r.name, "echo");
  EXPECT_EQ(r.match.path, "/");
  EXPECT_TRUE(r.match.path_prefix);
  ASSERT_EQ(r.upstreams.size(), 1u);
  EXPECT_EQ(r.upstreams[0].kind, Upstream::Kind::echo);
  EXPECT_EQ(r.keepalive.interval, 30s);
  EXPECT_EQ(r.timeouts.idle, Timeouts{}.idle);
  EXPECT_EQ(r.limits.max_frame_bytes, Limits{}.max_frame_bytes);
  EXPECT_EQ(demo_config().listeners[0].port, 8080);
}

// The example users start from must always load. It is found by walking up
// from the working directory (ctest runs in the build tree), from this source
// file (CMake passes an absolute __FILE__) or from the test binary.
std::filesystem::path find_example() {
  std::error_code ignored;
  for (std::filesystem::path start :
       {std::filesystem::current_path(), std::filesystem::absolute(__FILE__).parent_path(),
        std::filesystem::read_symlink("/proc/self/exe", ignored).parent_path()}) {
    for (auto dir = start; !dir.empty(); dir = dir.parent_path()) {
      const auto candidate = dir / "examples" / "weir.yaml";
      if (std::filesystem::exists(candidate)) return candidate;
      if (dir == dir.root_path()) break;
    }
  }
  return {};
}

TEST(ConfigExample, LoadsAndSaysWhatItShows) {
  ScopedEnv port("WEIR_PORT", nullptr);
  const auto path = find_example();
  ASSERT_FALSE(path.empty()) << "examples/weir.yaml not found";
  const Config c = load_file(path.string());
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].port, 8080);
  ASSERT_EQ(c.routes.size(), 2u);
  EXPECT_EQ(c.routes[0].name, "chat");
  EXPECT_EQ(c.routes[0].match.path, "/chat");
  EXPECT_FALSE(c.routes[0].match.path_prefix);
  ASSERT_EQ(c.routes[0].upstreams.size(), 1u);
  EXPECT_EQ(c.routes[0].upstreams[0].host, "127.0.0.1");
  EXPECT_EQ(c.routes[0].upstreams[0].port, 9000);
  EXPECT_EQ(c.routes[1].match.path, "/echo");
  EXPECT_EQ(c.routes[1].upstreams[0].kind, Upstream::Kind::echo);
  // The example shows the defaults, so a route that overrides nothing has them.
  EXPECT_EQ(c.routes[0].timeouts.idle, Timeouts{}.idle);
  EXPECT_EQ(c.routes[0].timeouts.connect, Timeouts{}.connect);
  EXPECT_EQ(c.routes[0].limits.max_frame_bytes, Limits{}.max_frame_bytes);
  EXPECT_EQ(c.routes[0].limits.buffer_bytes, Limits{}.buffer_bytes);
  EXPECT_EQ(c.drain, Config{}.drain);
}

}  // namespace
}  // namespace weir::config

namespace weir::config {
namespace {

// Found by fuzz_config: ${file:/dev/zero} read forever.
TEST(ConfigFileSubstitution, EndlessFileIsRefused) {
  const std::string yaml =
      "listeners: [{port: 0}]\nroutes:\n  - upstreams: [\"${file:/dev/zero}\"]\n";
  try {
    load_string(yaml, "t.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line, 3);
    EXPECT_NE(std::string(e.what()).find("File too large"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace weir::config

namespace weir::config {
namespace {

// Found by fuzz_config: each of these made yaml-cpp 0.7 loop forever.
TEST(ConfigYamlGuard, CommasThatHangTheParserAreErrors) {
  const struct {
    const char* yaml;
    int line, col;
  } cases[] = {
      {",", 1, 1},          {" , a", 1, 2},        {"- a\n,", 2, 1},    {"\"x\" ,", 1, 5},
      {"&a ,", 1, 4},       {"!t ,", 1, 4},        {"---\n,", 2, 1},    {"[a] ,", 1, 5},
      {"\"x\",", 1, 4},     {"[a],", 1, 4},        {"{a: 1},", 1, 7},   {"'x',", 1, 4},
      // A brace inside a plain scalar opens nothing: the comma is at top level.
      {"a: 30s ${V{#$} V\n,AR", 2, 1},
      // Nor does a quote: "a  '" is a plain scalar, "#" starts a comment.
      {" a  ' #\n, ", 2, 1},
      {"a: don't # x\n,", 2, 1},
  };
  for (const auto& c : cases) {
    try {
      load_string(c.yaml, "g.yaml");
      ADD_FAILURE() << "no error for " << c.yaml;
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.line, c.line) << c.yaml;
      EXPECT_EQ(e.col, c.col) << c.yaml;
      EXPECT_NE(std::string(e.what()).find("unexpected ','"), std::string::npos) << e.what();
    }
  }
}

TEST(ConfigYamlGuard, CommasInValuesListsAndBlocksAreFine) {
  const std::string yaml =
      "# a comment, with commas , here\n"
      "listeners: [{address: 127.0.0.1, port: 0}]\n"
      "routes:\n"
      "  - name: a\n"
      "    upstreams: [\"127.0.0.1:9000\", echo]\n"
      "    origins:\n"
      "      - \"https://x.example\"   # trailing, comment\n";
  EXPECT_NO_THROW(load_string(yaml, "ok.yaml"));
}

// Where a node starts, a quote opens a quoted scalar and the commas in it are
// the value's: after ": ", "- ", a property ("&a ", "!t "), or [ { , in a flow.
TEST(ConfigYamlGuard, CommasInQuotedScalarsAreFine) {
  for (const char* yaml : {"a: 'p , q'\n", "- \"p ,q\"\n", "a: &x 'p , q'\n", "a: !t \"p ,q\"\n",
                           "a: [x, 'y ,z']\n", "a: {k: 'v ,w', j: \"u ,v\"}\n", "'k ,l': v\n",
                           "a: it's fine, and 'quoted' too\n"}) {
    EXPECT_EQ(detail::find_unsafe_comma(yaml), std::nullopt) << yaml;
  }
}

}  // namespace
}  // namespace weir::config
