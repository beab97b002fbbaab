#pragma once
// FrameScanner: validates a stream of frames in place, from headers alone, so
// a relay can forward whole runs of frames with one write (design: "scan in
// place"). I/O-free: feed it bytes, it tells how many may be forwarded.
//
// Contract of scan(p, n, policy, sink):
//  - p[0..n) continues the stream where the previous call stopped consuming;
//  - returns `consumed`: bytes forming complete frame headers and any amount of
//    data payload, which the caller may forward now. The rest (n - consumed,
//    at most 14 + 125 bytes: a partial header or a partial control frame) must
//    be presented again, followed by new bytes, on the next call;
//  - control frames are only consumed whole, so their payload (close code and
//    reason) can be checked before a single byte of them is forwarded;
//  - on a violation, `error` is a close code and `consumed` stops before the
//    offending frame: everything before it is valid and may be forwarded.
//  - after a Close frame, `closed` is set and nothing more is consumed;
//  - a sink whose on_frame returns bool may refuse a frame: false stops the
//    scan before it (`stopped`; nothing of it consumed, no state changed).
//    Such a sink sees a control frame before its payload is checked: it acts
//    on the frame in on_payload, which only follows a valid one.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "ws/frame.h"
#include "ws/utf8.h"

namespace weir::ws {

struct ScanPolicy {
  bool expect_masked = true;           // frames from a client are masked, from a server not
  std::uint8_t allowed_rsv = 0;        // RSV bits an extension negotiated (0x4 = RSV1)
  std::uint64_t max_frame_bytes = 16ull << 20;
  std::uint64_t max_message_bytes = 64ull << 20;
  bool check_utf8 = false;             // validate text messages (strict mode) -> 1007
};

struct ScanResult {
  std::size_t consumed = 0;
  std::uint16_t error = 0;             // close code to fail the connection with, 0 = none
  const char* reason = "";             // static string describing the violation
  bool closed = false;                 // a Close frame was consumed (it ends the stream)
  bool stopped = false;                // the sink refused a data frame (see on_frame)
};

// A sink receives each frame once it is validated, before its bytes are
// forwarded, and may rewrite the header in place (same length) and payload.
//   void on_frame(FrameHeader& h, std::uint8_t* frame);   // frame = header start
//     (or bool on_frame(...): false refuses the frame and stops the scan)
//   void on_payload(std::uint8_t* p, std::size_t n, std::uint64_t offset);  // if wants_payload
//   void on_close(std::uint16_t code, std::string_view reason);  // code 1005 when empty
struct NullSink {
  static constexpr bool wants_payload = false;
  void on_frame(FrameHeader&, std::uint8_t*) {}
  void on_payload(std::uint8_t*, std::size_t, std::uint64_t) {}
  void on_close(std::uint16_t, std::string_view) {}
};

class FrameScanner {
 public:
  template <class Sink>
  ScanResult scan(std::uint8_t* p, std::size_t n, const ScanPolicy& policy, Sink& sink);

  bool in_message() const { return in_message_; }
  // True between frames: nothing of a frame is outstanding, so a frame of our
  // own (ping, close) may be inserted into the stream here.
  bool at_frame_boundary() const { return payload_left_ == 0; }
  bool closed() const { return closed_; }
  // Payload bytes of the current data frame not yet consumed (0 between frames).
  std::uint64_t payload_left() const { return payload_left_; }

 private:
  ScanResult fail(ScanResult r, std::uint16_t code, const char* why) {
    r.error = code;
    r.reason = why;
    return r;
  }

  std::uint64_t payload_left_ = 0;     // of the current data frame
  std::uint64_t payload_offset_ = 0;   // bytes of the current frame's payload already seen
  std::uint64_t message_bytes_ = 0;    // of the current (possibly fragmented) message
  // Checks text payload p[0..n) (masked per the current frame); false if invalid.
  bool check_text(const std::uint8_t* p, std::size_t n);

  bool in_message_ = false;            // a fragmented data message is open
  bool closed_ = false;
  bool text_ = false;                  // the current message is text and is being validated
  bool frame_fin_ = false;             // the current data frame ends its message
  bool frame_masked_ = false;
  std::uint8_t mask_[4] = {0, 0, 0, 0};  // of the current data frame
  Utf8Validator utf8_;
};

inline bool FrameScanner::check_text(const std::uint8_t* p, std::size_t n) {
  if (!frame_masked_) return utf8_.feed(p, n);
  std::uint8_t tmp[512];
  for (std::size_t done = 0; done < n;) {
    const std::size_t k = std::min(n - done, sizeof tmp);
    std::copy(p + done, p + done + k, tmp);
    apply_mask(tmp, k, mask_, payload_offset_ + done);
    if (!utf8_.feed(tmp, k)) return false;
    done += k;
  }
  return true;
}

template <class Sink>
ScanResult FrameScanner::scan(std::uint8_t* p, std::size_t n, const ScanPolicy& policy,
                              Sink& sink) {
  ScanResult r;
  std::size_t pos = 0;
  while (pos < n && !closed_) {
    if (payload_left_ != 0) {
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, n - pos));
      if (text_) {
        if (!check_text(p + pos, k)) return fail(r, close_code::invalid_payload, "invalid UTF-8 in text message");
        if (k == payload_left_ && frame_fin_ && !utf8_.complete())
          return fail(r, close_code::invalid_payload, "text message ends inside a UTF-8 sequence");
      }
      if constexpr (Sink::wants_payload) sink.on_payload(p + pos, k, payload_offset_);
      payload_offset_ += k;
      payload_left_ -= k;
      pos += k;
      r.consumed = pos;
      continue;
    }
    FrameHeader h;
    const HeaderStatus st = parse_header(p + pos, n - pos, h);
    if (st == HeaderStatus::need_more) break;
    if (st == HeaderStatus::bad_length) return fail(r, close_code::protocol_error, "invalid payload length");
    if (!is_known(h.opcode)) return fail(r, close_code::protocol_error, "reserved opcode");
    if (h.masked != policy.expect_masked)
      return fail(r, close_code::protocol_error,
                  policy.expect_masked ? "unmasked frame from client" : "masked frame from server");
    const bool control = is_control(h.opcode);
    if (control) {
      if (!h.fin) return fail(r, close_code::protocol_error, "fragmented control frame");
      if (h.payload_len > max_control_payload)
        return fail(r, close_code::protocol_error, "control frame payload over 125 bytes");
      if (h.rsv != 0) return fail(r, close_code::protocol_error, "reserved bits set on control frame");
      const std::size_t total = h.header_len + static_cast<std::size_t>(h.payload_len);
      if (n - pos < total) break;  // wait for the whole control frame
      constexpr bool refusable = std::is_same_v<decltype(sink.on_frame(h, p + pos)), bool>;
      if constexpr (refusable) {
        if (!sink.on_frame(h, p + pos)) {
          r.stopped = true;
          return r;
        }
      }
      std::uint8_t* payload = p + pos + h.header_len;
      if (h.opcode == Opcode::close) {
        std::uint8_t buf[max_control_payload];
        const auto len = static_cast<std::size_t>(h.payload_len);
        std::copy(payload, payload + len, buf);
        if (h.masked) apply_mask(buf, len, h.mask, 0);
        std::uint16_t code = close_code::no_status;
        std::string_view reason;
        if (len == 1) return fail(r, close_code::protocol_error, "close frame with a 1-byte payload");
        if (len >= 2) {
          code = static_cast<std::uint16_t>((buf[0] << 8) | buf[1]);
          if (!is_valid_wire_close_code(code)) return fail(r, close_code::protocol_error, "invalid close code");
          reason = std::string_view(reinterpret_cast<const char*>(buf + 2), len - 2);
          if (!is_valid_utf8(reason)) return fail(r, close_code::invalid_payload, "close reason is not UTF-8");
        }
        sink.on_close(code, reason);
        closed_ = true;
        r.closed = true;
      }
      if constexpr (!refusable) sink.on_frame(h, p + pos);
      if constexpr (Sink::wants_payload) sink.on_payload(payload, static_cast<std::size_t>(h.payload_len), 0);
      pos += total;
      r.consumed = pos;
      continue;
    }
    // Data frame.
    if ((h.rsv & ~policy.allowed_rsv) != 0) return fail(r, close_code::protocol_error, "reserved bits set");
    if (h.opcode == Opcode::continuation) {
      if (!in_message_) return fail(r, close_code::protocol_error, "continuation frame without a message");
      if (h.rsv & 0x4) return fail(r, close_code::protocol_error, "RSV1 set on a continuation frame");
    } else {
      if (in_message_) return fail(r, close_code::protocol_error, "new message before the previous one ended");
      message_bytes_ = 0;
    }
    if (h.payload_len > policy.max_frame_bytes) return fail(r, close_code::too_big, "frame too big");
    if (h.payload_len > policy.max_message_bytes - std::min(message_bytes_, policy.max_message_bytes))
      return fail(r, close_code::too_big, "message too big");
    if constexpr (std::is_same_v<decltype(sink.on_frame(h, p + pos)), bool>) {
      if (!sink.on_frame(h, p + pos)) {
        r.stopped = true;
        return r;
      }
    }
    message_bytes_ += h.payload_len;
    if (h.opcode != Opcode::continuation) {
      // Compressed payload (RSV1) cannot be checked without inflating it.
      text_ = policy.check_utf8 && h.opcode == Opcode::text && (h.rsv & 0x4) == 0;
      utf8_.reset();
    }
    if (text_ && h.fin && h.payload_len == 0 && !utf8_.complete())
      return fail(r, close_code::invalid_payload, "text message ends inside a UTF-8 sequence");
    frame_fin_ = h.fin;
    frame_masked_ = h.masked;
    std::memcpy(mask_, h.mask, 4);
    in_message_ = !h.fin;
    if constexpr (!std::is_same_v<decltype(sink.on_frame(h, p + pos)), bool>) sink.on_frame(h, p + pos);
    pos += h.header_len;
    payload_left_ = h.payload_len;
    payload_offset_ = 0;
    r.consumed = pos;
  }
  return r;
}

}  // namespace weir::ws
