#pragma once
// W3C Trace Context (traceparent) for the audit log: a session takes the
// trace id of the client's `traceparent` header when it is valid, else a new
// random one, logs it with every event of the session, and sends the
// backend a traceparent with that trace id and a span id of its own (Weir is
// one hop of the trace).

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace weir::obs {

struct TraceId {
  std::array<std::uint8_t, 16> bytes{};
  bool empty() const;
  std::string hex() const;  // 32 lower-case hex digits
};

struct TraceParent {
  TraceId trace;
  std::uint8_t flags = 0;   // trace-flags (bit 0: sampled)
};

// A traceparent header value ("00-<32 hex>-<16 hex>-<2 hex>"), or nullopt
// when it is not valid (wrong shape, upper-case hex, version ff, all-zero ids).
// Later versions are read by their first four fields, as the spec says.
std::optional<TraceParent> parse_traceparent(std::string_view value);

// A random trace id (never all zeros).
TraceId new_trace_id();

// "00-<trace>-<new random span id>-<flags>".
std::string make_traceparent(const TraceParent& p);

}  // namespace weir::obs
