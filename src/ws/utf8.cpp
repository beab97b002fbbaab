#include "ws/utf8.h"

#include <cstring>

namespace weir::ws {

bool Utf8Validator::feed(const std::uint8_t* p, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    if (need_ == 0) {
      // ASCII fast path: 8 bytes at a time while no high bit is set.
      while (i + 8 <= n) {
        std::uint64_t v;
        std::memcpy(&v, p + i, 8);
        if (v & 0x8080808080808080ull) break;
        i += 8;
      }
      if (i >= n) break;
      const std::uint8_t b = p[i++];
      if (b < 0x80) continue;
      lo_ = 0x80;
      hi_ = 0xBF;
      if (b >= 0xC2 && b <= 0xDF) {
        need_ = 1;
      } else if (b >= 0xE0 && b <= 0xEF) {
        need_ = 2;
        if (b == 0xE0) lo_ = 0xA0;        // overlong
        else if (b == 0xED) hi_ = 0x9F;   // surrogates
      } else if (b >= 0xF0 && b <= 0xF4) {
        need_ = 3;
        if (b == 0xF0) lo_ = 0x90;        // overlong
        else if (b == 0xF4) hi_ = 0x8F;   // > U+10FFFF
      } else {
        return false;
      }
    } else {
      const std::uint8_t b = p[i++];
      if (b < lo_ || b > hi_) return false;
      lo_ = 0x80;
      hi_ = 0xBF;
      --need_;
    }
  }
  return true;
}

}  // namespace weir::ws
