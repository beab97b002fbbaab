// Frame scanner, both directions, bulk and in random-sized pieces (the carry
// discipline of the relay), with re-masking of every payload byte.
//
// Input layout:
//   byte 0: bit 0 = client direction (expect_masked), bits 1-7 = piece size - 1
//   byte 1: policy
//     bit 0 RSV1 allowed (permessage-deflate negotiated), bit 1 RSV2, bit 2 RSV3
//     bit 3 check_utf8 (strict mode)
//     bits 4-5 max_frame_bytes:   64 KiB, 0, 125, 16 MiB
//     bits 6-7 max_message_bytes: 128 KiB, 1, 1000, 64 MiB
//     (0x00 = the policy every seed had before byte 1 existed)
//   bytes 2..: the stream
// Oracles: every frame the scanner accepts satisfies the policy (masking, RSV,
// sizes), every text message accepted in strict mode is valid UTF-8, and the
// bulk and piecewise runs end with the same verdict.
// The same stream also goes to the pre-warmed pool's idle scan
// (upstream/prewarm.h): it never keeps more than its limit, never grows the
// bytes it was given (kept + left <= input), and a stream fed in pieces
// keeps the same bytes as fed at once.
#include <cstring>
#include <string>
#include <vector>

#include "upstream/prewarm.h"
#include "ws/scanner.h"

namespace {
using weir::ws::FrameHeader;
using weir::ws::Opcode;
using weir::ws::ScanPolicy;

struct CheckSink {
  static constexpr bool wants_payload = true;
  explicit CheckSink(const ScanPolicy& p) : pol(p) {}

  const ScanPolicy& pol;
  std::uint64_t sum = 0;
  bool control = false;          // the next on_payload is a control frame's
  FrameHeader cur;               // current data frame
  std::uint64_t frame_left = 0;  // payload bytes of `cur` not yet seen
  std::uint64_t message_bytes = 0;
  bool collect = false;          // strict mode, uncompressed text: keep the plaintext
  std::string text;

  void on_frame(FrameHeader& h, std::uint8_t*) {
    sum += h.payload_len;
    if (h.masked != pol.expect_masked) __builtin_trap();
    if (weir::ws::is_control(h.opcode)) {
      if (h.rsv != 0 || !h.fin || h.payload_len > weir::ws::max_control_payload) __builtin_trap();
      control = true;
      return;
    }
    if ((h.rsv & ~pol.allowed_rsv) != 0) __builtin_trap();
    if (h.payload_len > pol.max_frame_bytes) __builtin_trap();
    if (h.opcode != Opcode::continuation) {
      message_bytes = 0;
      collect = pol.check_utf8 && h.opcode == Opcode::text && (h.rsv & 0x4) == 0;
      text.clear();
    } else if (h.rsv & 0x4) {
      __builtin_trap();  // RSV1 only on a message's first frame (RFC 7692)
    }
    message_bytes += h.payload_len;
    if (message_bytes > pol.max_message_bytes) __builtin_trap();
    cur = h;
    frame_left = h.payload_len;
    if (frame_left == 0 && h.fin) message_done();
  }

  void on_payload(std::uint8_t* p, std::size_t n, std::uint64_t off) {
    const std::uint8_t key[4] = {1, 2, 3, 4};
    if (control) {
      control = false;
      weir::ws::apply_mask(p, n, key, off);
      return;
    }
    if (n > frame_left) __builtin_trap();
    if (collect) {
      const std::size_t at = text.size();
      text.append(reinterpret_cast<const char*>(p), n);
      if (cur.masked) weir::ws::apply_mask(reinterpret_cast<std::uint8_t*>(text.data()) + at, n, cur.mask, off);
    }
    weir::ws::apply_mask(p, n, key, off);
    frame_left -= n;
    if (frame_left == 0 && cur.fin) message_done();
  }

  void on_close(std::uint16_t code, std::string_view reason) {
    sum += code + reason.size();
    if (!weir::ws::is_valid_utf8(reason)) __builtin_trap();
  }

  // The scanner validated the whole message before handing over its last byte.
  void message_done() {
    if (collect && !weir::ws::is_valid_utf8(text)) __builtin_trap();
    collect = false;
    text.clear();
  }
};

struct Verdict {
  std::uint16_t error = 0;
  bool closed = false;
};

Verdict run(const std::uint8_t* data, std::size_t size, const ScanPolicy& pol, std::size_t step) {
  weir::ws::FrameScanner s;
  CheckSink sink(pol);
  std::vector<std::uint8_t> buf;
  std::size_t pos = 0;
  while (pos < size) {
    const std::size_t k = std::min(step, size - pos);
    buf.insert(buf.end(), data + pos, data + pos + k);
    pos += k;
    auto r = s.scan(buf.data(), buf.size(), pol, sink);
    if (r.consumed > buf.size()) __builtin_trap();
    if (r.error || r.closed) return {r.error, r.closed};
    buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(r.consumed));
    if (buf.size() > weir::ws::max_header_bytes + weir::ws::max_control_payload) __builtin_trap();
  }
  return {};
}

ScanPolicy policy_of(std::uint8_t client, std::uint8_t b) {
  static constexpr std::uint64_t frame_max[4] = {1u << 16, 0, 125, 16ull << 20};
  static constexpr std::uint64_t message_max[4] = {1u << 17, 1, 1000, 64ull << 20};
  ScanPolicy pol;
  pol.expect_masked = client & 1;
  pol.allowed_rsv = static_cast<std::uint8_t>(((b & 1) ? 0x4 : 0) | ((b & 2) ? 0x2 : 0) | ((b & 4) ? 0x1 : 0));
  pol.check_utf8 = (b & 8) != 0;
  pol.max_frame_bytes = frame_max[(b >> 4) & 3];
  pol.max_message_bytes = message_max[(b >> 6) & 3];
  return pol;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const ScanPolicy pol = policy_of(data[0], data[1]);
  const std::size_t step = 1 + (data[0] >> 1);
  const Verdict bulk = run(data + 2, size - 2, pol, size);
  const Verdict pieces = run(data + 2, size - 2, pol, step);
  if (bulk.error != pieces.error || bulk.closed != pieces.closed) __builtin_trap();

  const std::string stream(reinterpret_cast<const char*>(data + 2), size - 2);
  constexpr std::size_t kMaxEarly = 4096;
  std::string in = stream, early;
  const auto once = weir::upstream::scan_idle_frames(in, early, kMaxEarly);
  if (early.size() > kMaxEarly || early.size() + in.size() > stream.size()) __builtin_trap();
  std::string in2, early2;
  auto verdict = weir::upstream::IdleScan::Verdict::ok;
  for (std::size_t at = 0; at < stream.size() && verdict == weir::upstream::IdleScan::Verdict::ok; at += step) {
    in2.append(stream, at, step);
    verdict = weir::upstream::scan_idle_frames(in2, early2, kMaxEarly).verdict;
  }
  if (once.verdict == weir::upstream::IdleScan::Verdict::ok && verdict == once.verdict && early2 != early)
    __builtin_trap();
  return 0;
}
