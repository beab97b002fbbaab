#include "upstream/idle_scan.h"

#include <cstdint>
#include <string_view>

namespace weir::upstream {

IdleScan scan_idle_frames(std::string& in, std::string& early, std::size_t max_early) {
  IdleScan out;
  std::size_t pos = 0;
  while (in.size() - pos >= 2) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(in.data() + pos);
    const std::size_t avail = in.size() - pos;
    const unsigned op = p[0] & 0x0f;
    if ((p[1] & 0x80) != 0) {  // a server never masks
      out.verdict = IdleScan::Verdict::bad;
      break;
    }
    std::uint64_t len = p[1] & 0x7f;
    std::size_t hdr = 2;
    if (len == 126) {
      if (avail < 4) break;
      len = (std::uint64_t{p[2]} << 8) | p[3];
      hdr = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int k = 2; k < 10; ++k) len = (len << 8) | p[k];
      hdr = 10;
    }
    if (len > max_early) {
      out.verdict = IdleScan::Verdict::bad;
      break;
    }
    if (avail < hdr + len) break;
    const std::string_view payload(in.data() + pos + hdr, static_cast<std::size_t>(len));
    if (op == 0x8) {
      out.verdict = IdleScan::Verdict::close;
      break;
    }
    if (op == 0x9) {
      out.pings.emplace_back(payload);
    } else if (op == 0xa) {
      out.pong = true;
    } else {
      if (early.size() + hdr + len > max_early) {
        out.verdict = IdleScan::Verdict::bad;
        break;
      }
      early.append(in, pos, hdr + static_cast<std::size_t>(len));
    }
    pos += hdr + static_cast<std::size_t>(len);
  }
  in.erase(0, pos);
  return out;
}

}  // namespace weir::upstream
