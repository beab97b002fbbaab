#include "proxy/inspect.h"

#include <algorithm>
#include <cstring>

namespace weir::proxy {

namespace {
// A message buffer kept between messages up to this capacity; larger ones
// are freed once they went out.
constexpr std::size_t kKeepCapacity = 64 * 1024;
// The output is written with 32-bit positions (the pump's); a filter that
// grows a message past this closes the session instead.
constexpr std::size_t kMaxOutput = std::size_t{1} << 31;
constexpr std::uint64_t kReserveMax = 1u << 20;
}  // namespace

bool InspectState::note_sent(std::int64_t now_ms) {
  if (message.capacity() <= kKeepCapacity && out.capacity() <= kKeepCapacity) return false;
  const bool fresh = trim_at_ms == 0;
  trim_at_ms = now_ms + kTrimDelayMs;
  return fresh;
}

bool InspectState::trim(std::int64_t now_ms) {
  if (trim_at_ms == 0 || now_ms < trim_at_ms) return trim_at_ms != 0;
  if (!message.empty() || !out.empty()) {
    trim_at_ms = now_ms + kTrimDelayMs;  // in use: later
    return true;
  }
  if (message.capacity() > kKeepCapacity) std::string().swap(message);
  if (out.capacity() > kKeepCapacity) std::string().swap(out);
  trim_at_ms = 0;
  return false;
}

bool InspectSink::on_frame(ws::FrameHeader& h, std::uint8_t*) {
  if (st.stopped) return false;  // a message filter closed: the scan ends here
  st.frame = h;
  if (ws::is_control(h.opcode)) {
    ++out.frames[static_cast<unsigned>(h.opcode) & 15];
    return true;  // goes out from on_payload, once valid
  }
  st.frame_dropped = false;
  if (gate.filters != nullptr) {
    const auto fate = gate.judge(h, out);
    if (fate == FrameGate::Fate::stop) return false;  // scanned again after the pause: counted then
    st.frame_dropped = fate == FrameGate::Fate::dropped;
  }
  ++out.frames[static_cast<unsigned>(h.opcode) & 15];
  if (st.frame_dropped) {
    // A compressed message a frame filter dropped is still inflated (and
    // then thrown away): the sender's next messages may refer back into it
    // (context takeover), so the inflater must see every one.
    const bool first = h.opcode != ws::Opcode::continuation;
    if (!st.inflater || (first ? (h.rsv & 0x4) == 0 : !st.inflate_only)) return true;
    st.frame_dropped = false;
    if (first) st.inflate_only = true;
  } else if (h.opcode != ws::Opcode::continuation) {
    st.inflate_only = false;
  }
  out.saw_data = true;
  if (h.opcode != ws::Opcode::continuation) {
    st.opcode = h.opcode;
    st.compressed = (h.rsv & 0x4) != 0;  // RSV1 is on a message's first frame only
    st.message.clear();
    // Room for the first frame at once (not for what a header merely claims
    // past that: a sender could announce a huge frame and send it slowly).
    st.message.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(h.payload_len, kReserveMax)));
  }
  if (h.fin && h.payload_len == 0) complete();  // no on_payload follows
  return true;
}

void InspectSink::on_payload(std::uint8_t* p, std::size_t n, std::uint64_t offset) {
  if (st.stopped) return;
  const ws::FrameHeader& h = st.frame;
  if (ws::is_control(h.opcode)) {
    // Whole and valid (at most 125 bytes): out again, unmasked and re-masked
    // as the other side needs.
    std::uint8_t payload[ws::max_control_payload];
    std::copy(p, p + n, payload);
    if (h.masked) ws::apply_mask(payload, n, h.mask, 0);
    emit(h.opcode, std::string_view(reinterpret_cast<const char*>(payload), n));
    return;
  }
  if (st.frame_dropped) return;
  const std::size_t at = st.message.size();
  st.message.append(reinterpret_cast<const char*>(p), n);
  if (h.masked) ws::apply_mask(reinterpret_cast<std::uint8_t*>(st.message.data()) + at, n, h.mask, offset);
  if (h.fin && offset + n == h.payload_len) complete();
}

// The whole message is in st.message: the filters rule, then it goes out as
// one frame (or not at all).
void InspectSink::complete() {
  if (st.compressed && !inflate_message()) {
    st.message.clear();
    return;
  }
  if (st.inflate_only) {  // dropped by a frame filter (counted there): inflated for the context only
    st.inflate_only = false;
    st.message.clear();
    return;
  }
  filters::Message m{st.opcode, st.message};
  const filters::MessageVerdict v = filters.on_message(gate.dir, m);
  switch (v.kind) {
    case filters::MessageVerdict::Kind::forward:
    case filters::MessageVerdict::Kind::replace:
      if (st.message.size() > kMaxOutput - st.out.size()) {
        st.stopped = true;
        out.stop_code = ws::close_code::internal_error;
        out.stop_reason = "message too big after filtering";
        break;
      }
      emit(st.opcode, st.message);
      ++out.messages;
      break;
    case filters::MessageVerdict::Kind::drop:
      ++out.dropped;
      refused(v);
      break;
    case filters::MessageVerdict::Kind::reject: {
      ++out.dropped;
      // Back to the sender: unmasked towards the client, masked towards the
      // upstream (the other way from this pump's output); within the room
      // the sender's pending answers leave.
      const bool fits = st.replies.size() + v.reply.size() + ws::max_header_bytes <= reply_room;
      if (fits) frame_into(st.replies, ws::Opcode::text, v.reply, !mask_out);
      refused(v, fits);
      break;
    }
    case filters::MessageVerdict::Kind::consume:
      break;
    case filters::MessageVerdict::Kind::close:
      refused(v);
      st.stopped = true;
      st.stop_reason = v.reason;
      out.stop_code = v.code;
      out.stop_reason = st.stop_reason.c_str();
      break;
  }
  st.message.clear();
}

void InspectSink::refused(const filters::MessageVerdict& v, bool replied) {
  if (v.reason.empty()) return;  // not a judging filter's (e.g. a consumed token refresh)
  if (st.refusals.size() >= kMaxRefusalsNoted) {
    ++st.refusals_more;
    return;
  }
  Refusal r{v.kind, filters.decided_by(), v.reason, v.pointer, {}, st.opcode, st.message.size(), replied};
  if (v.log_prefix > 0) r.prefix.assign(st.message, 0, std::min<std::size_t>(v.log_prefix, st.message.size()));
  st.refusals.push_back(std::move(r));
}

void InspectSink::emit(ws::Opcode op, std::string_view payload, std::uint8_t rsv) {
  if (!ws::is_control(op) && st.deflater) payload = deflate_message(payload, &rsv);
  frame_into(st.out, op, payload, mask_out, rsv);
  if (st.scratch.capacity() > kKeepCapacity) std::string().swap(st.scratch);
}

void InspectSink::frame_into(std::string& to, ws::Opcode op, std::string_view payload, bool mask, std::uint8_t rsv) {
  ws::FrameHeader h;
  h.fin = true;
  h.rsv = rsv;
  h.opcode = op;
  h.masked = mask;
  h.payload_len = payload.size();
  if (mask) ws::random_mask(h.mask);
  std::uint8_t head[ws::max_header_bytes];
  const std::size_t hn = ws::write_header(head, h);
  const std::size_t at = to.size();
  to.append(reinterpret_cast<const char*>(head), hn);
  to.append(payload);
  if (mask) ws::apply_mask(reinterpret_cast<std::uint8_t*>(to.data()) + at + hn, payload.size(), h.mask, 0);
}

}  // namespace weir::proxy
