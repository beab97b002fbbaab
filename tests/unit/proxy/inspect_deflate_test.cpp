// The inspecting pump with permessage-deflate (proxy/inspect_deflate.cpp):
// a compressed message (RSV1 on its first frame, fragmented or not) is
// inflated before the filters see it, bounded by the message limit (1009),
// and goes out compressed (RSV1) to a leg that negotiated the extension,
// plain to one that did not; control frames stay plain.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "../ws/test_frames.h"
#include "filters/session_filters.h"
#include "proxy/inspect.h"
#include "ws/deflate.h"
#include "ws/scanner.h"

namespace weir::proxy {
namespace {

using ws::Opcode;
using ws::test::encode_frame;

// Upper-cases every text message (replace) and records what it saw.
class UpperFilter final : public filters::Filter {
 public:
  UpperFilter() { key = "upper"; }
  unsigned hooks() const override { return filters::kMessages; }
  std::unique_ptr<filters::Instance> instantiate() const override { return std::make_unique<Inst>(); }
  bool same_as(const config::FilterSettings&) const override { return true; }
  static inline std::vector<std::string> seen;

 private:
  struct Inst final : filters::Instance {
    filters::MessageVerdict on_message(filters::Direction, filters::Message& m) override {
      seen.push_back(m.payload);
      for (char& c : m.payload) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      return filters::MessageVerdict::replace();
    }
  };
};

struct Frame {
  std::uint8_t rsv;
  Opcode op;
  std::string payload;
};

std::vector<Frame> frames_of(const std::string& bytes) {
  std::vector<Frame> out;
  for (std::size_t pos = 0; pos < bytes.size();) {
    ws::FrameHeader h;
    const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data()) + pos;
    EXPECT_EQ(ws::parse_header(p, bytes.size() - pos, h), ws::HeaderStatus::ok);
    std::string payload = bytes.substr(pos + h.header_len, h.payload_len);
    if (h.masked) ws::apply_mask(reinterpret_cast<std::uint8_t*>(payload.data()), payload.size(), h.mask, 0);
    out.push_back({h.rsv, h.opcode, std::move(payload)});
    pos += h.header_len + h.payload_len;
  }
  return out;
}

struct PumpRun {
  std::string out;
  RunOutcome outcome;
  ws::ScanResult result;
};

// The client's pump: reads the client leg (compressed when client_leg),
// writes the upstream leg (compressed when upstream_leg).
PumpRun pump(const std::string& input, bool client_leg, bool upstream_leg, std::uint64_t max_message = 1 << 20) {
  UpperFilter::seen.clear();
  std::vector<std::shared_ptr<const config::FilterSettings>> v{std::make_shared<UpperFilter>()};
  filters::Chain chain(v);
  filters::SessionFilters sf(chain);
  InspectState st;
  std::optional<ws::DeflateParams> c, u;
  if (client_leg) c = ws::DeflateParams{};
  if (upstream_leg) u = ws::DeflateParams{};
  setup_deflate(st, /*from_client=*/true, c, u, ws::DeflateSettings{});
  ws::FrameScanner scanner;
  ws::ScanPolicy policy;
  policy.expect_masked = true;
  policy.allowed_rsv = client_leg ? 0x4 : 0;
  PumpRun r;
  std::string in = input;
  InspectSink sink{st, r.outcome, sf, {}, true, max_message, false};
  r.result = scanner.scan(reinterpret_cast<std::uint8_t*>(in.data()), in.size(), policy, sink);
  r.out = st.out;
  return r;
}

void inflate_all(const std::vector<Frame>& frames, std::vector<std::string>& texts) {
  ws::Inflater in(15, false);
  for (const auto& f : frames) {
    if (f.op != Opcode::text) continue;
    EXPECT_EQ(f.rsv, 0x4);
    std::string out;
    EXPECT_EQ(in.inflate(f.payload, out, 1 << 20), ws::Inflater::Status::ok);
    texts.push_back(out);
  }
}

TEST(InspectDeflate, InflatesBeforeFiltersAndCompressesTowardsADeflateLeg) {
  ws::Deflater client(15, false);
  std::string z1, z2;
  ASSERT_TRUE(client.deflate("hello", z1));
  ASSERT_TRUE(client.deflate("hello again, hello", z2));  // uses the first message's window
  std::string in;
  in += encode_frame(Opcode::text, z1, true, true, 0x4);
  in += encode_frame(Opcode::text, z2.substr(0, 3), true, false, 0x4);  // fragmented: RSV1 on the first only
  in += encode_frame(Opcode::ping, "p", true);
  in += encode_frame(Opcode::continuation, z2.substr(3), true, true, 0);
  in += encode_frame(Opcode::text, "plain", true);  // uncompressed stays allowed
  for (bool upstream_leg : {true, false}) {
    SCOPED_TRACE(upstream_leg);
    const PumpRun r = pump(in, true, upstream_leg);
    EXPECT_EQ(r.result.error, 0) << r.result.reason;
    EXPECT_EQ(UpperFilter::seen, (std::vector<std::string>{"hello", "hello again, hello", "plain"}));
    const auto frames = frames_of(r.out);
    ASSERT_EQ(frames.size(), 4u);
    EXPECT_EQ(frames[1].op, Opcode::ping);  // whole and in place (inside the fragmented message), plain
    EXPECT_EQ(frames[1].rsv, 0);
    if (upstream_leg) {
      std::vector<std::string> texts;
      inflate_all(frames, texts);
      EXPECT_EQ(texts, (std::vector<std::string>{"HELLO", "HELLO AGAIN, HELLO", "PLAIN"}));
    } else {
      EXPECT_EQ(frames[0].payload, "HELLO");
      EXPECT_EQ(frames[0].rsv, 0);
      EXPECT_EQ(frames[3].payload, "PLAIN");
    }
  }
}

TEST(InspectDeflate, ZipBombIs1009AndNothingGoesOut) {
  ws::Deflater client(15, false);
  std::string z;
  ASSERT_TRUE(client.deflate(std::string(8 << 20, 'a'), z));
  ASSERT_LT(z.size(), 64u * 1024);
  const PumpRun r = pump(encode_frame(Opcode::binary, z, true, true, 0x4), true, true, 1 << 20);
  EXPECT_EQ(r.outcome.stop_code, 1009);
  EXPECT_TRUE(r.outcome.stop_is_protocol);  // the sender's fault: not counted as a filter's ruling
  EXPECT_TRUE(r.out.empty());
  EXPECT_TRUE(UpperFilter::seen.empty());
}

TEST(InspectDeflate, GarbageIs1007AndRsv1WithoutDeflateIs1002) {
  PumpRun r = pump(encode_frame(Opcode::text, "\xff\xff\xff\xff", true, true, 0x4), true, true);
  EXPECT_EQ(r.outcome.stop_code, 1007);
  r = pump(encode_frame(Opcode::text, "\xf2\x48\xcd\xc9\xc9\x07\x00", true, true, 0x4), false, true);
  EXPECT_EQ(r.result.error, 1002);  // the scanner: RSV1 not negotiated on this leg
}

}  // namespace
}  // namespace weir::proxy
