#pragma once
// Streaming UTF-8 validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF),
// for text messages that may arrive in fragments and close reasons.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace weir::ws {

class Utf8Validator {
 public:
  // Feeds the next bytes; false as soon as the input cannot be valid UTF-8.
  bool feed(const std::uint8_t* p, std::size_t n);
  // True when the bytes fed so far end on a character boundary.
  bool complete() const { return need_ == 0; }
  void reset() { need_ = 0; lo_ = 0x80; hi_ = 0xBF; }

 private:
  std::uint8_t need_ = 0;   // continuation bytes still expected
  std::uint8_t lo_ = 0x80;  // allowed range of the next continuation byte
  std::uint8_t hi_ = 0xBF;
};

inline bool is_valid_utf8(std::string_view s) {
  Utf8Validator v;
  return v.feed(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()) && v.complete();
}

}  // namespace weir::ws
