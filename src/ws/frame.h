#pragma once
// RFC 6455 frame layout: header parsing and building, masking, close codes.
// No I/O and no allocation: callers own every byte.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace weir::ws {

enum class Opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

inline constexpr bool is_control(Opcode op) { return (static_cast<unsigned>(op) & 0x8) != 0; }
inline constexpr bool is_known(Opcode op) {
  auto v = static_cast<unsigned>(op);
  return v <= 2 || (v >= 8 && v <= 10);
}

inline constexpr std::size_t max_header_bytes = 14;     // 2 + 8 (length) + 4 (mask)
inline constexpr std::size_t max_control_payload = 125;

struct FrameHeader {
  bool fin = true;
  std::uint8_t rsv = 0;          // RSV1..3 as bits 0x4,0x2,0x1 (RSV1 = 0x4)
  Opcode opcode = Opcode::text;
  bool masked = false;
  std::uint8_t mask[4] = {0, 0, 0, 0};
  std::uint64_t payload_len = 0;
  std::uint8_t header_len = 0;   // bytes the header occupies on the wire
};

enum class HeaderStatus { ok, need_more, bad_length };

// Parses the header at p[0..n). On ok fills h (including header_len). bad_length:
// 64-bit length with the top bit set (RFC 6455 5.2). Non-minimal length
// encodings are accepted, as most peers do.
HeaderStatus parse_header(const std::uint8_t* p, std::size_t n, FrameHeader& h);

// Bytes write_header will produce for this payload length and masking.
inline constexpr std::size_t header_size(std::uint64_t payload_len, bool masked) {
  return 2 + (payload_len < 126 ? 0 : payload_len <= 0xFFFF ? 2 : 8) + (masked ? 4 : 0);
}

// Writes h (fin, rsv, opcode, masked+mask, payload_len) to out (>= 14 bytes);
// returns the header size.
std::size_t write_header(std::uint8_t* out, const FrameHeader& h);

// XORs p[0..n) with key, starting `offset` bytes into the frame's payload
// (so a payload split across reads can be processed piecewise).
void apply_mask(std::uint8_t* p, std::size_t n, const std::uint8_t key[4], std::uint64_t offset);

// Close codes (RFC 6455 7.4).
namespace close_code {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t no_status = 1005;       // never on the wire
inline constexpr std::uint16_t abnormal = 1006;        // never on the wire
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t too_big = 1009;
inline constexpr std::uint16_t internal_error = 1011;
inline constexpr std::uint16_t service_restart = 1012;
inline constexpr std::uint16_t try_again_later = 1013;
inline constexpr std::uint16_t bad_gateway = 1014;
}  // namespace close_code

// True for codes a peer may put in a Close frame: 1000-1003, 1007-1014, 3000-4999.
bool is_valid_wire_close_code(std::uint16_t code);

// Builds a complete Close frame (code + reason, reason cut to fit 125 bytes)
// into out (>= 2 + 4 + 125 bytes); masked with a random key when `masked`.
// Returns its size.
std::size_t build_close_frame(std::uint8_t* out, std::uint16_t code, std::string_view reason,
                              bool masked);

// Builds a ping/pong (payload <= 125 bytes). Returns its size.
std::size_t build_control_frame(std::uint8_t* out, Opcode op, std::string_view payload,
                                bool masked);

// Fills key with 4 random bytes (per-thread fast generator seeded from the OS).
void random_mask(std::uint8_t key[4]);

}  // namespace weir::ws
