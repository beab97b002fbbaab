#pragma once
// weir-bench --json-messages: the text message a chat or event API carries,
// of an exact size, with its sequence number inside (so every echo is checked
// byte for byte). Also the message of bench/inspect_bench.cpp.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace weir::bench {

// Message seq is the template with seq (10 digits, after a 1: a valid JSON
// number) at seq_at.
struct JsonMessage {
  std::string text;
  std::size_t seq_at = 0;
  static constexpr std::size_t kMinSize = 96;
  explicit JsonMessage(std::size_t size);
  std::uint8_t byte(std::uint64_t seq, std::size_t i) const {
    if (i < seq_at || i >= seq_at + 10) return static_cast<std::uint8_t>(text[i]);
    std::uint64_t v = seq;
    for (std::size_t k = seq_at + 9; k > i; --k) v /= 10;
    return static_cast<std::uint8_t>('0' + v % 10);
  }
};

inline JsonMessage::JsonMessage(std::size_t size) {
  const std::string head = R"({"type":"chat","room":"lobby-42","user":"alice","ts":1765000000000,"seq":1)";
  seq_at = head.size();
  text = head + "0000000000" + R"(,"text":")";
  static constexpr std::string_view words = "hello from the load generator, nothing to escape here ";
  const std::size_t fill = size > text.size() + 2 ? size - text.size() - 2 : 0;
  for (std::size_t i = 0; i < fill; ++i) text += words[i % words.size()];
  text += "\"}";
}

}  // namespace weir::bench
