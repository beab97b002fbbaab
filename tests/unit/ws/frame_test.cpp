#include "ws/frame.h"

#include <gtest/gtest.h>

#include <vector>

namespace weir::ws {
namespace {

std::vector<std::uint8_t> frame_bytes(Opcode op, std::size_t len, bool masked, bool fin = true,
                                      std::uint8_t rsv = 0) {
  FrameHeader h;
  h.fin = fin;
  h.rsv = rsv;
  h.opcode = op;
  h.masked = masked;
  h.payload_len = len;
  if (masked) {
    h.mask[0] = 1; h.mask[1] = 2; h.mask[2] = 3; h.mask[3] = 4;
  }
  std::vector<std::uint8_t> out(14 + len);
  const std::size_t n = write_header(out.data(), h);
  for (std::size_t i = 0; i < len; ++i) out[n + i] = static_cast<std::uint8_t>(i);
  out.resize(n + len);
  return out;
}

TEST(Frame, ParsesAllThreeLengthEncodings) {
  for (std::size_t len : {0u, 1u, 125u, 126u, 127u, 65535u, 65536u, 1u << 20}) {
    for (bool masked : {false, true}) {
      auto bytes = frame_bytes(Opcode::binary, len, masked);
      FrameHeader h;
      ASSERT_EQ(parse_header(bytes.data(), bytes.size(), h), HeaderStatus::ok) << len;
      EXPECT_EQ(h.payload_len, len);
      EXPECT_EQ(h.masked, masked);
      EXPECT_EQ(h.header_len, header_size(len, masked));
      EXPECT_EQ(h.opcode, Opcode::binary);
      EXPECT_TRUE(h.fin);
      if (masked) {
        EXPECT_EQ(h.mask[3], 4);
      }
    }
  }
}

TEST(Frame, LengthEncodingBoundaries) {
  EXPECT_EQ(header_size(125, false), 2u);
  EXPECT_EQ(header_size(126, false), 4u);
  EXPECT_EQ(header_size(65535, false), 4u);
  EXPECT_EQ(header_size(65536, false), 10u);
  EXPECT_EQ(header_size(65536, true), 14u);
}

TEST(Frame, NeedsMoreForEveryTruncatedHeader) {
  auto bytes = frame_bytes(Opcode::text, 70000, true);  // 14-byte header
  for (std::size_t cut = 0; cut < 14; ++cut) {
    FrameHeader h;
    EXPECT_EQ(parse_header(bytes.data(), cut, h), HeaderStatus::need_more) << cut;
  }
}

TEST(Frame, RejectsLengthWithTopBitSet) {
  std::uint8_t b[10] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1};
  FrameHeader h;
  EXPECT_EQ(parse_header(b, sizeof b, h), HeaderStatus::bad_length);
}

TEST(Frame, MaskIsAnInvolutionAtAnyOffset) {
  std::vector<std::uint8_t> data(1000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 7);
  const std::uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
  auto whole = data;
  apply_mask(whole.data(), whole.size(), key, 0);
  for (std::size_t i = 0; i < data.size(); ++i) ASSERT_EQ(whole[i], data[i] ^ key[i % 4]);
  // Piecewise at odd split points gives the same result.
  auto pieces = data;
  std::size_t pos = 0;
  for (std::size_t step : {1u, 3u, 7u, 13u, 250u, 726u}) {
    apply_mask(pieces.data() + pos, step, key, pos);
    pos += step;
  }
  ASSERT_EQ(pos, data.size());
  EXPECT_EQ(pieces, whole);
}

TEST(Frame, CloseCodeValidity) {
  for (std::uint16_t c : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999})
    EXPECT_TRUE(is_valid_wire_close_code(c)) << c;
  for (std::uint16_t c : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535})
    EXPECT_FALSE(is_valid_wire_close_code(c)) << c;
}

TEST(Frame, BuildsCloseFramesMaskedAndNot) {
  std::uint8_t out[160];
  std::size_t n = build_close_frame(out, 1001, "bye", false);
  ASSERT_EQ(n, 2u + 2 + 3);
  EXPECT_EQ(out[0], 0x88);
  EXPECT_EQ(out[1], 5);
  EXPECT_EQ(out[2], 0x03);
  EXPECT_EQ(out[3], 0xE9);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(out + 4), 3), "bye");

  n = build_close_frame(out, 1000, "", true);
  FrameHeader h;
  ASSERT_EQ(parse_header(out, n, h), HeaderStatus::ok);
  EXPECT_TRUE(h.masked);
  EXPECT_EQ(h.payload_len, 2u);
  apply_mask(out + h.header_len, 2, h.mask, 0);
  EXPECT_EQ(out[h.header_len], 0x03);
  EXPECT_EQ(out[h.header_len + 1], 0xE8);
}

TEST(Frame, CloseReasonIsCutTo125Bytes) {
  std::uint8_t out[160];
  const std::string long_reason(300, 'x');
  const std::size_t n = build_close_frame(out, 1000, long_reason, false);
  EXPECT_EQ(n, 2u + 125);
}

}  // namespace
}  // namespace weir::ws
