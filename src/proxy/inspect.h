#pragma once
// The inspecting pump's per-direction part (docs/architecture.md, "The inspecting pump"): a
// scanner sink that reassembles each data message, unmasked, runs the
// route's on_message filters on it, and writes what they let through as
// new frames into an output buffer, in order with the control frames
// around it (re-masked with fresh keys towards the upstream). I/O-free:
// relay.cpp feeds it scanned runs and writes `out`.
//
// Memory: one message (at most the route's max_message_bytes, which the
// scanner enforces with 1009 before a byte past it is kept) plus its
// re-framed copy. Buffers past 64 KiB are kept while large messages keep
// coming (allocating and faulting in a fresh MiB per message cost 6x the
// relay's CPU on 1 MiB messages) and given back a second after the last one.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "filters/api.h"

#include "proxy/relay_sink.h"
#include "ws/deflate.h"
#include "ws/frame.h"

namespace weir::proxy {

// The largest message an inspecting route reassembles, whatever its
// max_message_bytes says.
inline constexpr std::uint64_t kMaxInspectedMessage = 1ull << 30;

// A message a filter refused (dropped, rejected, or closed on), for the
// audit log.
struct Refusal {
  filters::MessageVerdict::Kind kind;
  std::string_view filter;           // the filter's name (its config outlives the session)
  std::string reason, pointer;
  std::string prefix;                // its first bytes, where the filter's log_payload allows
  ws::Opcode opcode;
  std::size_t size;
  bool replied = false;              // reject: its answer was queued
};

// Refusals noted per scan (the rest only counted): a flood of refused
// messages costs bounded memory and log lines per read.
inline constexpr std::size_t kMaxRefusalsNoted = 16;

struct InspectState {
  std::string message;               // the message being reassembled, unmasked
  ws::Opcode opcode = ws::Opcode::text;
  std::string out;                   // re-framed bytes waiting to be written
  std::string stop_reason;           // a message filter's close reason (RunOutcome points here)
  // Since the scan began (the pump takes them after it): what the filters
  // refused, and the replies to rejected messages, whole frames for the
  // sender (masked when the sender is the upstream).
  std::vector<Refusal> refusals;
  std::uint64_t refusals_more = 0;   // refused past kMaxRefusalsNoted
  std::string replies;
  bool stopped = false;              // a message filter closed the session: nothing more goes out
  // The frame being read.
  ws::FrameHeader frame;
  bool frame_dropped = false;        // a frame filter dropped it (its payload goes nowhere)
  std::int64_t trim_at_ms = 0;       // give large buffers back then (0: none held)
  // permessage-deflate where Weir terminates it (ws/deflate.h): inflates
  // the messages this pump reads from a leg that negotiated it, deflates
  // what it writes to a leg that did. Null: not on that leg.
  std::unique_ptr<ws::Inflater> inflater;
  std::unique_ptr<ws::Deflater> deflater;
  std::string scratch;               // the inflated or compressed copy of a message
  bool compressed = false;           // the message being reassembled came with RSV1
  bool inflate_only = false;         // ... and a frame filter dropped it: inflated, then discarded

  static constexpr std::int64_t kTrimDelayMs = 1000;
  // After a run went out: large buffers are kept for kTrimDelayMs more.
  // Returns true when a trim time was newly set (the caller arms its timer).
  bool note_sent(std::int64_t now_ms);
  // At trim_at_ms: gives back large buffers, unless a message is half
  // reassembled (then later). Returns true when a trim time is still set.
  bool trim(std::int64_t now_ms);
};

// Sets up st's codecs for the pump that reads leg `from` (the client leg:
// Weir is the server there) and writes the other: the permessage-deflate
// each leg agreed, unset where it is not used.
void setup_deflate(InspectState& st, bool from_client, const std::optional<ws::DeflateParams>& client_leg,
                   const std::optional<ws::DeflateParams>& upstream_leg, const ws::DeflateSettings& s);

struct InspectSink {
  static constexpr bool wants_payload = true;
  InspectState& st;
  RunOutcome& out;
  filters::SessionFilters& filters;  // has on_message filters
  FrameGate gate;                    // gate.filters null: no frame filters
  bool mask_out = false;             // frames go to the upstream: mask them
  std::uint64_t max_message = 0;     // inflated messages: 1009 past this many bytes
  bool check_utf8 = false;           // inflated text messages: 1007 unless UTF-8 (strict)
  std::size_t reply_room = 0;        // bytes of reject answers this scan may still frame

  bool on_frame(ws::FrameHeader& h, std::uint8_t* frame);
  void on_payload(std::uint8_t* p, std::size_t n, std::uint64_t offset);
  void on_close(std::uint16_t code, std::string_view reason) {
    out.saw_close = true;
    out.close_code = code;
    out.close_reason.assign(reason);
  }

 private:
  void complete();
  void refused(const filters::MessageVerdict& v, bool replied = false);
  // inspect_deflate.cpp: st.message becomes the inflated message; false
  // (the session closes: 1009, 1007, 1011) when it cannot.
  bool inflate_message();
  // The payload of a data message for the wire: compressed into st.scratch
  // (*rsv = RSV1) when the leg it goes to negotiated permessage-deflate.
  std::string_view deflate_message(std::string_view payload, std::uint8_t* rsv);
  // A data message or control frame out to the other side (compressed when
  // that leg negotiated it).
  void emit(ws::Opcode op, std::string_view payload, std::uint8_t rsv = 0);
  // One whole frame appended to `to` (masked with a fresh key when mask).
  static void frame_into(std::string& to, ws::Opcode op, std::string_view payload, bool mask, std::uint8_t rsv = 0);
};

}  // namespace weir::proxy
