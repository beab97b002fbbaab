// permessage-deflate (ws/deflate.h): the bounded inflater on hostile
// compressed messages, and the negotiation parsers on hostile header values.
//
// Input layout:
//   byte 0: bits 0-2 window bits - 9 (7 = 15), bit 3 reset per message
//           (no context takeover), bits 4-7 bound selector (output limit)
//   then messages, each: 2 bytes little-endian length, that many bytes
//   (the last one takes what is left).
// Oracles: no message inflates past the bound (too_big instead), and no
// work is done past it (the output buffer never exceeds bound + 1); what
// inflates comes back the same through a Deflater and a fresh Inflater; the
// header parsers take any bytes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ws/deflate.h"

namespace {
using weir::ws::Deflater;
using weir::ws::Inflater;

constexpr std::uint64_t kBounds[16] = {0, 1, 5, 64, 125, 1000, 4096, 65536,
                                       100000, 1u << 20, 3, 7, 200, 16384, 300000, 2u << 20};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const int bits = 9 + std::min(data[0] & 7, 6);
  const bool reset = (data[0] & 8) != 0;
  const std::uint64_t bound = kBounds[data[0] >> 4];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);

  // The same bytes as Sec-WebSocket-Extensions values, both ways.
  {
    weir::ws::DeflateSettings s;
    s.peer_window_bits = bits;
    s.context_takeover = !reset;
    std::vector<std::string_view> values{rest};
    if (auto a = weir::ws::accept_offer(values, s)) {
      if (a->params.server_max_window_bits < 9 || a->params.server_max_window_bits > 15) std::abort();
      if (a->params.client_max_window_bits < 8 || a->params.client_max_window_bits > 15) std::abort();
    }
    std::optional<weir::ws::DeflateParams> p;
    std::string why;
    if (weir::ws::check_response(values, s, p, why) && p) {
      if (p->server_max_window_bits < 8 || p->client_max_window_bits < 9) std::abort();
    }
  }

  Inflater in(bits, reset);
  Deflater de(bits, reset);
  Inflater again(bits, reset);
  std::string out, z, back;
  while (!rest.empty()) {
    std::size_t n = rest.size();
    if (rest.size() >= 2) {
      n = static_cast<std::uint8_t>(rest[0]) | (static_cast<std::size_t>(static_cast<std::uint8_t>(rest[1])) << 8);
      rest.remove_prefix(2);
      n = std::min(n, rest.size());
    }
    const std::string_view msg = rest.substr(0, n);
    rest.remove_prefix(n);
    const auto st = in.inflate(msg, out, bound);
    if (out.capacity() > bound + 1 + 64 * 1024 && out.capacity() > 2 * (bound + 1) + 64) std::abort();  // work past the bound
    if (st != Inflater::Status::ok) {
      if (!out.empty()) std::abort();
      break;  // the session would end here
    }
    if (out.size() > bound) std::abort();
    z.clear();
    if (!de.deflate(out, z)) std::abort();
    if (again.inflate(z, back, bound) != Inflater::Status::ok || back != out) std::abort();
  }
  return 0;
}
