// The re-fragmenting relay path: a stream of frames cut into reads at every
// possible point comes out as runs that each end at a frame boundary, and
// carry the same messages (payload unmasked, FIN, opcodes, control frames in
// order) as went in.

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "ws/frame.h"
#include "ws/refragment.h"
#include "ws/scanner.h"
#include "test_frames.h"

namespace weir::ws {
namespace {

constexpr std::size_t kHead = kRefragHeadroom;

std::string frame(Opcode op, bool fin, const std::string& payload, bool masked, std::uint8_t rsv = 0) {
  return test::encode_frame(op, payload, masked, fin, rsv);
}

struct Event {
  Opcode op;
  bool fin;
  std::uint8_t rsv;
  std::string payload;
  bool operator==(const Event&) const = default;
};

// Decodes complete frames; false if `run` does not end at a frame boundary.
bool decode(const std::string& run, bool masked, std::vector<Event>& out) {
  std::size_t pos = 0;
  while (pos < run.size()) {
    FrameHeader h;
    if (parse_header(reinterpret_cast<const std::uint8_t*>(run.data()) + pos, run.size() - pos, h) != HeaderStatus::ok)
      return false;
    if (h.masked != masked) return false;
    if (run.size() - pos - h.header_len < h.payload_len) return false;
    std::string p = run.substr(pos + h.header_len, h.payload_len);
    if (h.masked) apply_mask(reinterpret_cast<std::uint8_t*>(p.data()), p.size(), h.mask, 0);
    out.push_back({h.opcode, h.fin, h.rsv, p});
    pos += h.header_len + h.payload_len;
  }
  return true;
}

// Joins data frames into messages, keeps control frames as they are.
std::vector<Event> messages(const std::vector<Event>& frames) {
  std::vector<Event> out;
  std::string cur;
  Opcode op = Opcode::text;
  std::uint8_t rsv = 0;
  for (const auto& f : frames) {
    if (is_control(f.op)) {
      out.push_back(f);
      continue;
    }
    if (f.op != Opcode::continuation) {
      op = f.op;
      rsv = f.rsv;
      cur.clear();
    } else {
      EXPECT_EQ(f.rsv, 0) << "RSV1 on a continuation frame";
    }
    cur += f.payload;
    if (f.fin) out.push_back({op, true, rsv, cur});
  }
  return out;
}

struct Sink {
  std::uint8_t* base = nullptr;
  std::size_t last = Refragmenter::npos;
  FrameHeader last_h;
  void on_frame(FrameHeader& h, std::uint8_t* f) {
    if (!is_control(h.opcode)) {
      last = static_cast<std::size_t>(f - base);
      last_h = h;
    }
  }
  void on_payload(std::uint8_t*, std::size_t, std::uint64_t) {}
  void on_close(std::uint16_t, std::string_view) {}
  static constexpr bool wants_payload = false;
};

// Feeds `stream` in reads ending at the given cut points, as the relay's
// pump does; returns the runs written.
std::vector<std::string> relay(const std::string& stream, const std::vector<std::size_t>& cuts, bool masked) {
  FrameScanner scanner;
  Refragmenter refrag;
  ScanPolicy policy;
  policy.expect_masked = masked;
  policy.allowed_rsv = 0x4;
  std::vector<std::uint8_t> buf(kHead + stream.size() + 16);
  std::size_t carry = 0, from = 0;
  std::vector<std::string> runs;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(stream.size());
  for (std::size_t to : ends) {
    std::memcpy(buf.data() + kHead + carry, stream.data() + from, to - from);
    const std::size_t total = carry + (to - from);
    from = to;
    const std::uint64_t left_before = scanner.payload_left();
    Sink sink;
    sink.base = buf.data() + kHead;
    const ScanResult r = scanner.scan(buf.data() + kHead, total, policy, sink);
    EXPECT_EQ(r.error, 0) << r.reason;
    std::size_t start = kHead, end = kHead + r.consumed;
    const std::uint64_t rest = scanner.payload_left();
    const std::size_t lead = refrag.open() ? static_cast<std::size_t>(std::min<std::uint64_t>(left_before, r.consumed)) : 0;
    if (lead != 0 || (rest != 0 && sink.last != Refragmenter::npos))
      start = refrag.rewrite(buf.data(), start, end, lead,
                             sink.last == Refragmenter::npos ? sink.last : kHead + sink.last, &sink.last_h, rest);
    if (end > start) runs.emplace_back(reinterpret_cast<char*>(buf.data()) + start, end - start);
    carry = total - r.consumed;
    std::memmove(buf.data() + kHead, buf.data() + kHead + r.consumed, carry);
  }
  return runs;
}

void check_all_splits(const std::string& stream, bool masked) {
  std::vector<Event> want_frames;
  ASSERT_TRUE(decode(stream, masked, want_frames));
  const auto want = messages(want_frames);
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    const auto runs = relay(stream, {cut}, masked);
    std::vector<Event> got_frames;
    for (const auto& run : runs) ASSERT_TRUE(decode(run, masked, got_frames)) << "run not ending at a frame boundary, cut " << cut;
    ASSERT_EQ(messages(got_frames), want) << "cut at " << cut;
  }
}

TEST(Refragment, EverySplitPointOfSmallFrames) {
  const std::string stream = frame(Opcode::text, true, "hello", true) + frame(Opcode::ping, true, "p", true) +
                             frame(Opcode::binary, false, std::string(200, 'b'), true) +
                             frame(Opcode::pong, true, "", true) +
                             frame(Opcode::continuation, true, std::string(130, 'c'), true) +
                             frame(Opcode::text, true, "", true);
  check_all_splits(stream, true);
  std::string unmasked = frame(Opcode::binary, true, std::string(300, 'x'), false) +
                         frame(Opcode::text, true, "done", false, 0x4);
  check_all_splits(unmasked, false);
}

TEST(Refragment, EverySplitPointOfALongFrameWithHeaderShrinking) {
  // 70000 bytes: an 8-byte length; most pieces need only 2 (the header
  // shrinks, what precedes it in the run moves up).
  std::string payload(70000, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 7);
  const std::string stream = frame(Opcode::text, true, "a", true) + frame(Opcode::binary, true, payload, true, 0x4);
  // Every point would be 70000 runs of the scanner over 70 KB: cut near the
  // interesting places and at a stride elsewhere.
  std::vector<Event> want_frames;
  ASSERT_TRUE(decode(stream, true, want_frames));
  const auto want = messages(want_frames);
  for (std::size_t cut = 0; cut <= stream.size(); cut += (cut < 40 || cut > stream.size() - 40) ? 1 : 997) {
    for (std::size_t second : {cut + 1, cut + 126, cut + 65536}) {
      if (second >= stream.size()) continue;
      const auto runs = relay(stream, {cut, second}, true);
      std::vector<Event> got;
      for (const auto& run : runs) ASSERT_TRUE(decode(run, true, got)) << cut << "," << second;
      ASSERT_EQ(messages(got), want) << cut << "," << second;
    }
  }
}

TEST(Refragment, ManySmallReads) {
  std::string stream;
  for (int i = 0; i < 20; ++i) stream += frame(i % 3 ? Opcode::text : Opcode::binary, true, std::string(i * 13, 'a' + i), true);
  for (std::size_t step : {1, 2, 3, 7, 64}) {
    std::vector<std::size_t> cuts;
    for (std::size_t c = step; c < stream.size(); c += step) cuts.push_back(c);
    const auto runs = relay(stream, cuts, true);
    std::vector<Event> got, want;
    for (const auto& run : runs) ASSERT_TRUE(decode(run, true, got));
    ASSERT_TRUE(decode(stream, true, want));
    EXPECT_EQ(messages(got), messages(want)) << "step " << step;
  }
}

}  // namespace
}  // namespace weir::ws
