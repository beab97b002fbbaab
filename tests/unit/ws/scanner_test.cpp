#include "ws/scanner.h"

#include "test_frames.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace weir::ws {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes frame(Opcode op, const std::string& payload, bool masked, bool fin = true, std::uint8_t rsv = 0) {
  const std::string f = test::encode_frame(op, payload, masked, fin, rsv);
  return Bytes(f.begin(), f.end());
}

Bytes close_frame(std::uint16_t code, const std::string& reason, bool masked) {
  std::string p;
  p.push_back(static_cast<char>(code >> 8));
  p.push_back(static_cast<char>(code & 0xFF));
  return frame(Opcode::close, p + reason, masked);
}

Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

struct Recorder {
  static constexpr bool wants_payload = false;
  std::vector<FrameHeader> frames;
  std::uint16_t close_code = 0;
  std::string close_reason;
  void on_frame(FrameHeader& h, std::uint8_t*) { frames.push_back(h); }
  void on_payload(std::uint8_t*, std::size_t, std::uint64_t) {}
  void on_close(std::uint16_t code, std::string_view reason) {
    close_code = code;
    close_reason.assign(reason);
  }
};

ScanPolicy client_policy() { return ScanPolicy{}; }
ScanPolicy server_policy() {
  ScanPolicy p;
  p.expect_masked = false;
  return p;
}

// Feeds bytes in chunks of `step`, carrying unconsumed tails as a relay does.
// Returns the total consumed and the first error.
ScanResult feed(FrameScanner& s, const Bytes& in, std::size_t step, const ScanPolicy& pol, Recorder& rec,
                std::size_t* forwarded = nullptr) {
  Bytes buf;
  std::size_t pos = 0, total = 0;
  ScanResult last;
  while (pos < in.size()) {
    const std::size_t k = std::min(step, in.size() - pos);
    buf.insert(buf.end(), in.begin() + pos, in.begin() + pos + k);
    pos += k;
    last = s.scan(buf.data(), buf.size(), pol, rec);
    total += last.consumed;
    if (last.error) break;
    buf.erase(buf.begin(), buf.begin() + last.consumed);
    EXPECT_LE(buf.size(), max_header_bytes + max_control_payload);
    if (last.closed) break;
  }
  if (forwarded) *forwarded = total;
  last.consumed = total;
  return last;
}

TEST(Scanner, ManyFramesInOneBufferAreConsumedAtOnce) {
  auto in = cat({frame(Opcode::text, "hello", true), frame(Opcode::binary, std::string(300, 'x'), true),
                 frame(Opcode::ping, "p", true), frame(Opcode::binary, std::string(70000, 'y'), true)});
  FrameScanner s;
  Recorder rec;
  auto r = s.scan(in.data(), in.size(), client_policy(), rec);
  EXPECT_EQ(r.error, 0);
  EXPECT_EQ(r.consumed, in.size());
  ASSERT_EQ(rec.frames.size(), 4u);
  EXPECT_EQ(rec.frames[3].payload_len, 70000u);
  EXPECT_TRUE(s.at_frame_boundary());
}

TEST(Scanner, ByteAtATimeGivesTheSameFrames) {
  auto in = cat({frame(Opcode::text, "a", true), frame(Opcode::binary, std::string(126, 'b'), true),
                 frame(Opcode::binary, std::string(65536, 'c'), true), frame(Opcode::pong, "xyz", true),
                 close_frame(1000, "done", true)});
  FrameScanner s;
  Recorder rec;
  std::size_t fwd = 0;
  auto r = feed(s, in, 1, client_policy(), rec, &fwd);
  EXPECT_EQ(r.error, 0);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(fwd, in.size());
  ASSERT_EQ(rec.frames.size(), 5u);
  EXPECT_EQ(rec.close_code, 1000);
  EXPECT_EQ(rec.close_reason, "done");
}

TEST(Scanner, EverySplitPointOfAHeaderWorks) {
  auto in = cat({frame(Opcode::binary, std::string(70000, 'z'), true), frame(Opcode::text, "end", true)});
  for (std::size_t step : {2u, 3u, 5u, 13u, 14u, 15u, 4096u}) {
    FrameScanner s;
    Recorder rec;
    std::size_t fwd = 0;
    auto r = feed(s, in, step, client_policy(), rec, &fwd);
    EXPECT_EQ(r.error, 0) << step;
    EXPECT_EQ(fwd, in.size()) << step;
    EXPECT_EQ(rec.frames.size(), 2u) << step;
  }
}

TEST(Scanner, ControlFramesAreOnlyConsumedWhole) {
  auto in = close_frame(1001, "going", true);
  FrameScanner s;
  Recorder rec;
  auto r = s.scan(in.data(), in.size() - 1, client_policy(), rec);
  EXPECT_EQ(r.consumed, 0u);
  EXPECT_TRUE(rec.frames.empty());
  r = s.scan(in.data(), in.size(), client_policy(), rec);
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(rec.close_code, 1001);
}

TEST(Scanner, FragmentedMessagesWithInterleavedControl) {
  auto in = cat({frame(Opcode::text, "a", true, false), frame(Opcode::ping, "", true),
                 frame(Opcode::continuation, "b", true, false), frame(Opcode::continuation, "c", true, true),
                 frame(Opcode::binary, "d", true)});
  FrameScanner s;
  Recorder rec;
  auto r = s.scan(in.data(), in.size(), client_policy(), rec);
  EXPECT_EQ(r.error, 0);
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_FALSE(s.in_message());
}

struct Violation {
  const char* name;
  Bytes bytes;
  bool from_client;
  std::uint16_t code;
};

std::vector<Violation> violations() {
  Bytes bad_len = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0};
  return {
      {"unmasked client frame", frame(Opcode::text, "x", false), true, close_code::protocol_error},
      {"masked server frame", frame(Opcode::text, "x", true), false, close_code::protocol_error},
      {"reserved opcode 3", frame(static_cast<Opcode>(3), "x", true), true, close_code::protocol_error},
      {"reserved opcode 0xB", frame(static_cast<Opcode>(0xB), "", true), true, close_code::protocol_error},
      {"rsv1 without extension", frame(Opcode::text, "x", true, true, 4), true, close_code::protocol_error},
      {"rsv3", frame(Opcode::binary, "x", true, true, 1), true, close_code::protocol_error},
      {"ping over 125", frame(Opcode::ping, std::string(126, 'p'), true), true, close_code::protocol_error},
      {"fragmented ping", frame(Opcode::ping, "", true, false), true, close_code::protocol_error},
      {"continuation without start", frame(Opcode::continuation, "x", true), true, close_code::protocol_error},
      {"new message inside a fragmented one",
       cat({frame(Opcode::text, "a", true, false), frame(Opcode::text, "b", true)}), true,
       close_code::protocol_error},
      {"close code 999", close_frame(999, "", true), true, close_code::protocol_error},
      {"close code 1005", close_frame(1005, "", true), true, close_code::protocol_error},
      {"close code 1006", close_frame(1006, "", true), true, close_code::protocol_error},
      {"close code 1016", close_frame(1016, "", true), true, close_code::protocol_error},
      {"close code 2999", close_frame(2999, "", true), true, close_code::protocol_error},
      {"close 1-byte payload", frame(Opcode::close, "x", true), true, close_code::protocol_error},
      {"close reason not utf8", close_frame(1000, "\xff\xfe", true), true, close_code::invalid_payload},
      {"64-bit length top bit", bad_len, false, close_code::protocol_error},
  };
}

TEST(Scanner, EveryViolationGetsItsCloseCodeAtAnySplit) {
  for (const auto& v : violations()) {
    for (std::size_t step : {1u, 7u, 1000u}) {
      FrameScanner s;
      Recorder rec;
      // A valid frame first: it must still be forwarded.
      const Bytes good = frame(Opcode::text, "ok", v.from_client);
      auto r = feed(s, cat({good, v.bytes}), step, v.from_client ? client_policy() : server_policy(), rec);
      EXPECT_EQ(r.error, v.code) << v.name << " step " << step;
      EXPECT_GE(r.consumed, good.size()) << v.name;
    }
  }
}

TEST(Scanner, FrameAndMessageSizeLimits) {
  ScanPolicy pol;
  pol.max_frame_bytes = 100;
  pol.max_message_bytes = 150;
  {
    FrameScanner s;
    Recorder rec;
    auto in = frame(Opcode::binary, std::string(101, 'x'), true);
    auto r = s.scan(in.data(), in.size(), pol, rec);
    EXPECT_EQ(r.error, close_code::too_big);
    EXPECT_EQ(r.consumed, 0u);
  }
  {
    FrameScanner s;
    Recorder rec;
    auto in = cat({frame(Opcode::binary, std::string(100, 'x'), true, false),
                   frame(Opcode::continuation, std::string(51, 'y'), true)});
    auto r = s.scan(in.data(), in.size(), pol, rec);
    EXPECT_EQ(r.error, close_code::too_big);
    EXPECT_EQ(r.consumed, 106u);  // the first fragment passes
  }
  {
    FrameScanner s;
    Recorder rec;  // exactly at the limits: fine, and the count restarts per message
    auto in = cat({frame(Opcode::binary, std::string(100, 'x'), true, false),
                   frame(Opcode::continuation, std::string(50, 'y'), true),
                   frame(Opcode::binary, std::string(100, 'z'), true)});
    auto r = s.scan(in.data(), in.size(), pol, rec);
    EXPECT_EQ(r.error, 0);
    EXPECT_EQ(r.consumed, in.size());
  }
}

TEST(Scanner, Rsv1AllowedWhenNegotiatedButNotOnContinuations) {
  ScanPolicy pol;
  pol.allowed_rsv = 0x4;
  FrameScanner s;
  Recorder rec;
  auto ok = frame(Opcode::text, "c", true, false, 4);
  auto r = s.scan(ok.data(), ok.size(), pol, rec);
  EXPECT_EQ(r.error, 0);
  auto bad = frame(Opcode::continuation, "d", true, true, 4);
  r = s.scan(bad.data(), bad.size(), pol, rec);
  EXPECT_EQ(r.error, close_code::protocol_error);
}

TEST(Scanner, NothingIsConsumedAfterClose) {
  auto in = cat({close_frame(1000, "", true), frame(Opcode::text, "late", true)});
  FrameScanner s;
  Recorder rec;
  auto r = s.scan(in.data(), in.size(), client_policy(), rec);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.consumed, in.size() - frame(Opcode::text, "late", true).size());
  EXPECT_TRUE(s.closed());
}

TEST(Scanner, EmptyCloseReportsNoStatus) {
  auto in = frame(Opcode::close, "", true);
  FrameScanner s;
  Recorder rec;
  auto r = s.scan(in.data(), in.size(), client_policy(), rec);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(rec.close_code, close_code::no_status);
}

}  // namespace
}  // namespace weir::ws

namespace weir::ws {
namespace {

ScanPolicy strict_policy() {
  ScanPolicy p;
  p.check_utf8 = true;
  return p;
}

TEST(ScannerStrict, ValidTextPassesInWholeAndFragmentedMessagesAtAnySplit) {
  const std::string euro = "\xe2\x82\xac";
  auto in = cat({frame(Opcode::text, "plain " + euro, true), frame(Opcode::text, "a\xe2", true, false),
                 frame(Opcode::ping, "", true), frame(Opcode::continuation, "\x82", true, false),
                 frame(Opcode::continuation, "\xac!", true, true), frame(Opcode::binary, "\xff\xfe", true)});
  for (std::size_t step : {1u, 2u, 5u, 4096u}) {
    FrameScanner s;
    Recorder rec;
    std::size_t fwd = 0;
    auto r = feed(s, in, step, strict_policy(), rec, &fwd);
    EXPECT_EQ(r.error, 0) << step;
    EXPECT_EQ(fwd, in.size()) << step;
  }
}

TEST(ScannerStrict, InvalidTextIs1007) {
  struct Case {
    const char* name;
    Bytes bytes;
  };
  const Case cases[] = {
      {"invalid byte", frame(Opcode::text, "ok\xff", true)},
      {"surrogate", frame(Opcode::text, "\xed\xa0\x80", true)},
      {"truncated at end", frame(Opcode::text, "\xe2\x82", true)},
      {"truncated across fragments",
       cat({frame(Opcode::text, "a\xe2", true, false), frame(Opcode::continuation, "", true, true)})},
      {"invalid in continuation",
       cat({frame(Opcode::text, "a", true, false), frame(Opcode::continuation, "\xc0\xaf", true, true)})},
      {"server side unmasked", frame(Opcode::text, "\xff", false)},
  };
  for (const auto& c : cases) {
    for (std::size_t step : {1u, 3u, 4096u}) {
      FrameScanner s;
      Recorder rec;
      ScanPolicy pol = strict_policy();
      pol.expect_masked = std::string(c.name) != "server side unmasked";
      auto r = feed(s, c.bytes, step, pol, rec);
      EXPECT_EQ(r.error, close_code::invalid_payload) << c.name << " step " << step;
    }
  }
}

TEST(ScannerStrict, OffByDefault) {
  FrameScanner s;
  Recorder rec;
  auto in = frame(Opcode::text, "\xff", true);
  auto r = s.scan(in.data(), in.size(), client_policy(), rec);
  EXPECT_EQ(r.error, 0);
}

}  // namespace
}  // namespace weir::ws

namespace weir::ws {
namespace {

// A sink whose on_frame returns bool may refuse any frame, control frames
// included: the scan stops before it, nothing of it consumed, no state
// changed (a Close it refuses does not close the stream).
struct RefuseOpcode {
  static constexpr bool wants_payload = false;
  Opcode refused;
  int seen = 0;
  bool on_frame(FrameHeader& h, std::uint8_t*) {
    ++seen;
    return h.opcode != refused;
  }
  void on_payload(std::uint8_t*, std::size_t, std::uint64_t) {}
  void on_close(std::uint16_t, std::string_view) {}
};

TEST(Scanner, ABoolSinkMayRefuseAControlFrame) {
  const Bytes data = frame(Opcode::text, "ok", true);
  for (Opcode refused : {Opcode::ping, Opcode::close}) {
    const std::string payload = refused == Opcode::close ? std::string("\x03\xe8", 2) : "p";
    Bytes in = cat({data, frame(refused, payload, true), frame(Opcode::text, "after", true)});
    FrameScanner s;
    RefuseOpcode sink{refused};
    const ScanResult r = s.scan(in.data(), in.size(), ScanPolicy{}, sink);
    EXPECT_TRUE(r.stopped);
    EXPECT_FALSE(r.closed);
    EXPECT_FALSE(s.closed());
    EXPECT_EQ(r.consumed, data.size());
    EXPECT_EQ(sink.seen, 2);
  }
}

}  // namespace
}  // namespace weir::ws
