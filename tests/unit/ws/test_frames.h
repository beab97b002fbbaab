#pragma once
// Builds one WebSocket frame for the ws/ unit tests (a random key when masked).

#include <cstdint>
#include <string>

#include "ws/frame.h"

namespace weir::ws::test {

inline std::string encode_frame(Opcode op, const std::string& payload, bool masked, bool fin = true,
                                std::uint8_t rsv = 0) {
  FrameHeader h;
  h.fin = fin;
  h.rsv = rsv;
  h.opcode = op;
  h.masked = masked;
  h.payload_len = payload.size();
  if (masked) random_mask(h.mask);
  std::uint8_t hdr[14];
  std::string out(reinterpret_cast<const char*>(hdr), write_header(hdr, h));
  const std::size_t n = out.size();
  out += payload;
  if (masked) apply_mask(reinterpret_cast<std::uint8_t*>(out.data()) + n, payload.size(), h.mask, 0);
  return out;
}

}  // namespace weir::ws::test
