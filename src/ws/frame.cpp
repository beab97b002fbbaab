#include "ws/frame.h"

#include <random>

namespace weir::ws {

HeaderStatus parse_header(const std::uint8_t* p, std::size_t n, FrameHeader& h) {
  if (n < 2) return HeaderStatus::need_more;
  const std::uint8_t b0 = p[0], b1 = p[1];
  h.fin = (b0 & 0x80) != 0;
  h.rsv = (b0 >> 4) & 0x7;
  h.opcode = static_cast<Opcode>(b0 & 0x0F);
  h.masked = (b1 & 0x80) != 0;
  std::uint64_t len = b1 & 0x7F;
  std::size_t pos = 2;
  if (len == 126) {
    if (n < 4) return HeaderStatus::need_more;
    len = (std::uint64_t{p[2]} << 8) | p[3];
    pos = 4;
  } else if (len == 127) {
    if (n < 10) return HeaderStatus::need_more;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | p[2 + i];
    if (len >> 63) return HeaderStatus::bad_length;
    pos = 10;
  }
  if (h.masked) {
    if (n < pos + 4) return HeaderStatus::need_more;
    std::memcpy(h.mask, p + pos, 4);
    pos += 4;
  }
  h.payload_len = len;
  h.header_len = static_cast<std::uint8_t>(pos);
  return HeaderStatus::ok;
}

std::size_t write_header(std::uint8_t* out, const FrameHeader& h) {
  out[0] = static_cast<std::uint8_t>((h.fin ? 0x80 : 0) | ((h.rsv & 0x7) << 4) |
                                     (static_cast<unsigned>(h.opcode) & 0x0F));
  std::size_t pos = 2;
  const std::uint8_t mbit = h.masked ? 0x80 : 0;
  if (h.payload_len < 126) {
    out[1] = static_cast<std::uint8_t>(mbit | h.payload_len);
  } else if (h.payload_len <= 0xFFFF) {
    out[1] = mbit | 126;
    out[2] = static_cast<std::uint8_t>(h.payload_len >> 8);
    out[3] = static_cast<std::uint8_t>(h.payload_len);
    pos = 4;
  } else {
    out[1] = mbit | 127;
    for (int i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(h.payload_len >> (56 - 8 * i));
    pos = 10;
  }
  if (h.masked) {
    std::memcpy(out + pos, h.mask, 4);
    pos += 4;
  }
  return pos;
}

void apply_mask(std::uint8_t* p, std::size_t n, const std::uint8_t key[4], std::uint64_t offset) {
  // Rotate the key so that index 0 lines up with p[0], then XOR 8 bytes at a time.
  std::uint8_t k[8];
  for (int i = 0; i < 8; ++i) k[i] = key[(offset + i) & 3];
  std::uint64_t k64;
  std::memcpy(&k64, k, 8);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= k64;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] ^= k[i & 7];
}

bool is_valid_wire_close_code(std::uint16_t code) {
  if (code >= 3000 && code <= 4999) return true;
  if (code < 1000 || code > 1014) return false;
  return code != 1004 && code != 1005 && code != 1006;
}

void random_mask(std::uint8_t key[4]) {
  thread_local std::mt19937 gen{std::random_device{}()};
  std::uint32_t v = gen();
  std::memcpy(key, &v, 4);
}

std::size_t build_close_frame(std::uint8_t* out, std::uint16_t code, std::string_view reason,
                              bool masked) {
  if (reason.size() > max_control_payload - 2) reason = reason.substr(0, max_control_payload - 2);
  FrameHeader h;
  h.fin = true;
  h.opcode = Opcode::close;
  h.masked = masked;
  h.payload_len = 2 + reason.size();
  if (masked) random_mask(h.mask);
  std::size_t pos = write_header(out, h);
  std::uint8_t* payload = out + pos;
  payload[0] = static_cast<std::uint8_t>(code >> 8);
  payload[1] = static_cast<std::uint8_t>(code);
  std::memcpy(payload + 2, reason.data(), reason.size());
  if (masked) apply_mask(payload, h.payload_len, h.mask, 0);
  return pos + h.payload_len;
}

std::size_t build_control_frame(std::uint8_t* out, Opcode op, std::string_view payload,
                                bool masked) {
  if (payload.size() > max_control_payload) payload = payload.substr(0, max_control_payload);
  FrameHeader h;
  h.fin = true;
  h.opcode = op;
  h.masked = masked;
  h.payload_len = payload.size();
  if (masked) random_mask(h.mask);
  std::size_t pos = write_header(out, h);
  std::memcpy(out + pos, payload.data(), payload.size());
  if (masked) apply_mask(out + pos, payload.size(), h.mask, 0);
  return pos + payload.size();
}

}  // namespace weir::ws
