#pragma once
// A route's series in the metrics registry (docs/metrics.md), looked up once
// per config generation: a reload finds the same series by name and labels,
// so counts go on. Hot counters (per run of frames) are handles here; rare
// ones (refusals, Close codes, failures), whose labels are known only when
// they happen, go through count_*(), which caches the lookup per thread.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "observability/metrics.h"
#include "proxy/side.h"
#include "ws/frame.h"

namespace weir::proxy {

// Frames are counted by opcode in this order.
inline constexpr const char* kOpcodeNames[] = {"continuation", "text", "binary", "close", "ping", "pong"};
constexpr unsigned opcode_slot(ws::Opcode op) {
  switch (op) {
    case ws::Opcode::continuation: return 0;
    case ws::Opcode::text: return 1;
    case ws::Opcode::binary: return 2;
    case ws::Opcode::close: return 3;
    case ws::Opcode::ping: return 4;
    default: return 5;
  }
}

struct UpstreamMetrics {
  obs::GaugeId active;
  obs::HistogramId connect_duration;
};

struct RouteMetrics {
  std::string name;
  obs::CounterId handshakes;            // 101 sent
  obs::GaugeId active;                  // sessions relaying
  obs::HistogramId handshake_duration;  // µs, accept to 101 written
  obs::HistogramId lifetime;            // µs, 101 to close
  // By the side a pump reads (its direction: client = client_to_upstream).
  BySide<obs::CounterId> messages, bytes, backpressure, throttle, dropped;
  BySide<std::array<obs::CounterId, 6>> frames;
  BySide<obs::CounterId> protocol_errors;  // by the side that broke the protocol
  std::vector<UpstreamMetrics> upstreams;  // in the route's upstream order

  static RouteMetrics build(obs::Registry& reg, const config::Route& route);
};

// Process-wide series not tied to a route.
struct ListenerMetrics {
  obs::CounterId accepted;
  static ListenerMetrics build(obs::Registry& reg, std::string_view listener_key);
};

// A rare event (cached per thread: the registry's lock is taken once per
// label set and thread).
void count_handshake_failure(obs::Cell* cells, std::string_view route, unsigned status, std::string_view reason);
void count_close_frame(obs::Cell* cells, std::string_view route, Side side, bool sent, std::uint16_t code);
void count_upstream_failure(obs::Cell* cells, std::string_view route, std::string_view upstream,
                            std::string_view reason);
void count_filter(obs::Cell* cells, std::string_view route, std::string_view filter, bool refusal);

// The code label of weir_close_frames_total: RFC codes as themselves, the
// first 64 application codes (3000-4999) too, later ones "3xxx"/"4xxx".
std::string close_code_label(std::uint16_t code);

// The reason label of a refusal Weir itself decided, from its status.
std::string_view refusal_reason(unsigned status);

// Histogram buckets (docs/metrics.md), in µs.
extern const obs::HistogramSpec kLatencyBuckets;
extern const obs::HistogramSpec kLifetimeBuckets;

}  // namespace weir::proxy
