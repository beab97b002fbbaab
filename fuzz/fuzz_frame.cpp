// Frame scanner, both directions, bulk and in random-sized pieces (the carry
// discipline of the relay), with re-masking of every payload byte.
#include <cstring>
#include <vector>

#include "ws/scanner.h"

namespace {
struct TouchSink {
  static constexpr bool wants_payload = true;
  std::uint64_t sum = 0;
  void on_frame(weir::ws::FrameHeader& h, std::uint8_t*) { sum += h.payload_len; }
  void on_payload(std::uint8_t* p, std::size_t n, std::uint64_t off) {
    const std::uint8_t key[4] = {1, 2, 3, 4};
    weir::ws::apply_mask(p, n, key, off);
  }
  void on_close(std::uint16_t code, std::string_view reason) { sum += code + reason.size(); }
};

void run(const std::uint8_t* data, std::size_t size, bool client, std::size_t step) {
  weir::ws::ScanPolicy pol;
  pol.expect_masked = client;
  pol.max_frame_bytes = 1 << 16;
  pol.max_message_bytes = 1 << 17;
  weir::ws::FrameScanner s;
  TouchSink sink;
  std::vector<std::uint8_t> buf;
  std::size_t pos = 0;
  while (pos < size) {
    const std::size_t k = std::min(step, size - pos);
    buf.insert(buf.end(), data + pos, data + pos + k);
    pos += k;
    auto r = s.scan(buf.data(), buf.size(), pol, sink);
    if (r.consumed > buf.size()) __builtin_trap();
    if (r.error || r.closed) return;
    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(r.consumed));
    if (buf.size() > weir::ws::max_header_bytes + weir::ws::max_control_payload) __builtin_trap();
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const bool client = data[0] & 1;
  const std::size_t step = 1 + (data[0] >> 1);
  run(data + 1, size - 1, client, size);  // bulk
  run(data + 1, size - 1, client, step);  // pieces
  return 0;
}
