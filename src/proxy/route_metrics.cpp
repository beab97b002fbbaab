#include "proxy/route_metrics.h"

#include <mutex>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

namespace weir::proxy {

namespace {

constexpr std::uint64_t kLatencyBounds[] = {500,     1'000,   2'500,   5'000,     10'000,    25'000,    50'000,
                                            100'000, 250'000, 500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000};
constexpr std::uint64_t kS = 1'000'000;
constexpr std::uint64_t kLifetimeBounds[] = {1 * kS,   5 * kS,    15 * kS,   60 * kS,   300 * kS,
                                             900 * kS, 3600 * kS, 14400 * kS, 86400 * kS};

constexpr const char* kDirections[] = {"client_to_upstream", "upstream_to_client"};

obs::Registry& reg() { return obs::Registry::global(); }

// name + labels -> cell index, per thread (each worker counts on its own).
std::uint32_t cached(std::string key, const auto& make) {
  thread_local std::unordered_map<std::string, std::uint32_t> cache;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  // Bounded: a label set that keeps changing (it should not) cannot grow
  // the cache without limit; the registry still finds the series.
  if (cache.size() > 4096) cache.clear();
  const std::uint32_t at = make();
  cache.emplace(std::move(key), at);
  return at;
}

}  // namespace

const obs::HistogramSpec kLatencyBuckets{kLatencyBounds, 1e6};
const obs::HistogramSpec kLifetimeBuckets{kLifetimeBounds, 1e6};

RouteMetrics RouteMetrics::build(obs::Registry& r, const config::Route& route) {
  RouteMetrics m;
  m.name = route.name;
  const obs::Labels rl{{"route", route.name}};
  m.handshakes = r.counter("weir_handshakes_total", "WebSocket upgrades completed (101 sent)", rl);
  m.active = r.gauge("weir_connections_active", "Sessions relaying (after the 101)", rl);
  m.handshake_duration = r.histogram("weir_handshake_duration_seconds",
                                     "Accept to 101 written, as the client sees it", kLatencyBuckets, rl);
  m.lifetime = r.histogram("weir_connection_duration_seconds", "Lifetime of a relayed session, 101 to close",
                           kLifetimeBuckets, rl);
  for (Side s : kSides) {
    obs::Labels dl{{"route", route.name}, {"direction", kDirections[index(s)]}};
    m.messages[s] = r.counter("weir_messages_total", "Data messages relayed", dl);
    m.bytes[s] = r.counter("weir_bytes_total", "Bytes relayed, frame headers included", dl);
    m.backpressure[s] = r.counter("weir_backpressure_pauses_total",
                                  "Reads stopped because the other side's socket buffer was full", dl);
    m.throttle[s] = r.counter("weir_throttle_pauses_total", "Times a filter paused reading a side", dl);
    m.dropped[s] = r.counter("weir_messages_dropped_total", "Messages a filter dropped", dl);
    for (unsigned k = 0; k < 6; ++k) {
      obs::Labels fl = dl;
      fl.emplace_back("opcode", kOpcodeNames[k]);
      m.frames[s][k] = r.counter("weir_frames_total", "Frames read, by opcode", fl);
    }
    m.protocol_errors[s] = r.counter("weir_protocol_errors_total", "Frames that broke RFC 6455, by sender",
                                     {{"route", route.name}, {"side", side_name(s)}});
  }
  for (const auto& u : route.upstreams) {
    obs::Labels ul{{"route", route.name}, {"upstream", u.text}};
    m.upstreams.push_back({r.gauge("weir_upstream_active_connections", "Sessions relaying to this upstream", ul),
                           r.histogram("weir_upstream_connect_duration_seconds",
                                       "Connect start to TCP (and TLS) established", kLatencyBuckets, ul)});
  }
  return m;
}

ListenerMetrics ListenerMetrics::build(obs::Registry& r, std::string_view key) {
  return {r.counter("weir_connections_accepted_total", "TCP connections accepted", {{"listener", std::string(key)}})};
}

void count_handshake_failure(obs::Cell* cells, std::string_view route, unsigned status, std::string_view reason) {
  const auto at = cached(fmt::format("hf\x1f{}\x1f{}\x1f{}", route, status, reason), [&] {
    return reg()
        .counter("weir_handshakes_failed_total", "Handshakes refused, by HTTP status and reason",
                 {{"route", std::string(route)}, {"status", std::to_string(status)}, {"reason", std::string(reason)}})
        .at;
  });
  cells[at].add();
}

// A peer picks its Close code: the codes RFC 6455 and IANA define keep their
// own label, and so do the first kPrivateCodes application codes seen
// (3000-4999, e.g. an app's 4001); past those, a code shares its range's
// label, so a peer cannot mint thousands of series.
constexpr std::size_t kPrivateCodes = 64;

std::string close_code_label(std::uint16_t code) {
  if (code == 0) return "none";
  if (code >= 1000 && code <= 1015) return std::to_string(code);
  if (code < 3000 || code > 4999) return "other";
  static std::mutex mu;
  static std::set<std::uint16_t> admitted;
  std::lock_guard lock(mu);  // rare: only when a thread meets a code the first time
  if (admitted.count(code) || (admitted.size() < kPrivateCodes && admitted.insert(code).second)) {
    return std::to_string(code);
  }
  return code < 4000 ? "3xxx" : "4xxx";
}

void count_close_frame(obs::Cell* cells, std::string_view route, Side side, bool sent, std::uint16_t code) {
  const auto at = cached(fmt::format("cf\x1f{}\x1f{}\x1f{}\x1f{}", route, index(side), sent, code), [&] {
    const std::string label = close_code_label(code);
    return reg()
        .counter("weir_close_frames_total", "Close frames read from or written to a side, by code",
                 {{"route", std::string(route)},
                  {"side", side_name(side)},
                  {"event", sent ? "sent" : "received"},
                  {"code", label}})
        .at;
  });
  cells[at].add();
}

void count_upstream_failure(obs::Cell* cells, std::string_view route, std::string_view upstream,
                            std::string_view reason) {
  const auto at = cached(fmt::format("uf\x1f{}\x1f{}\x1f{}", route, upstream, reason), [&] {
    return reg()
        .counter("weir_upstream_connect_failures_total", "Upstream connects or handshakes that failed",
                 {{"route", std::string(route)}, {"upstream", std::string(upstream)}, {"reason", std::string(reason)}})
        .at;
  });
  cells[at].add();
}

void count_filter(obs::Cell* cells, std::string_view route, std::string_view filter, bool refusal) {
  const auto at = cached(fmt::format("fl\x1f{}\x1f{}\x1f{}", route, filter, refusal), [&] {
    const obs::Labels l{{"route", std::string(route)}, {"filter", std::string(filter)}};
    return (refusal ? reg().counter("weir_filter_refusals_total", "Handshakes a filter refused", l)
                    : reg().counter("weir_filter_closes_total", "Sessions a filter closed", l))
        .at;
  });
  cells[at].add();
}

std::string_view refusal_reason(unsigned status) {
  switch (status) {
    case 400: return "bad_request";
    case 404: return "no_route";
    case 405: return "bad_method";
    case 408: return "handshake_timeout";
    case 426: return "not_websocket";
    case 431: return "header_too_large";
    case 499: return "client_gone";
    case 502: return "upstream_failed";
    case 503: return "unavailable";
    case 504: return "upstream_timeout";
    default: return "other";
  }
}

}  // namespace weir::proxy
