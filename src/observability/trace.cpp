#include "observability/trace.h"

#include <openssl/rand.h>

#include <algorithm>

namespace weir::obs {

namespace {

constexpr char kHex[] = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // upper case is not valid in traceparent
}

// n bytes from 2n lower-case hex digits at s; false if any is not one.
bool parse_hex(std::string_view s, std::uint8_t* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

void append_hex(std::string& out, const std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 15];
  }
}

void random_bytes(std::uint8_t* p, std::size_t n) {
  // RAND_bytes fails only if the RNG cannot be seeded; then any non-zero id
  // still correlates the session's own events.
  if (RAND_bytes(p, static_cast<int>(n)) != 1) std::fill(p, p + n, 0x5a);
  if (std::all_of(p, p + n, [](std::uint8_t b) { return b == 0; })) p[n - 1] = 1;
}

}  // namespace

bool TraceId::empty() const {
  return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

std::string TraceId::hex() const {
  std::string s;
  s.reserve(32);
  append_hex(s, bytes.data(), bytes.size());
  return s;
}

std::optional<TraceParent> parse_traceparent(std::string_view v) {
  // version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55.
  if (v.size() < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  std::uint8_t version = 0;
  if (!parse_hex(v.substr(0, 2), &version, 1) || version == 0xff) return std::nullopt;
  // Version 00 has exactly these fields; a later one may append "-..." fields.
  if (version == 0 ? v.size() != 55 : (v.size() > 55 && v[55] != '-')) return std::nullopt;
  TraceParent p;
  std::uint8_t parent[8];
  if (!parse_hex(v.substr(3, 32), p.trace.bytes.data(), 16) || !parse_hex(v.substr(36, 16), parent, 8) ||
      !parse_hex(v.substr(53, 2), &p.flags, 1)) {
    return std::nullopt;
  }
  if (p.trace.empty() || std::all_of(parent, parent + 8, [](std::uint8_t b) { return b == 0; })) return std::nullopt;
  return p;
}

TraceId new_trace_id() {
  TraceId t;
  random_bytes(t.bytes.data(), t.bytes.size());
  return t;
}

std::string make_traceparent(const TraceParent& p) {
  std::uint8_t span[8];
  random_bytes(span, sizeof span);
  std::string s = "00-";
  append_hex(s, p.trace.bytes.data(), 16);
  s += '-';
  append_hex(s, span, 8);
  s += '-';
  append_hex(s, &p.flags, 1);
  return s;
}

}  // namespace weir::obs
