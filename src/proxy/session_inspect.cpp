// Session: what follows a scan of the inspecting pump. Each message a filter
// refused is logged (event message.refused, with a prefix of the payload only
// where the filter's log_payload allows), and the answers to rejected
// messages go back to their sender, between the frames already on their way
// to it.

#include "http/base64.h"
#include "observability/log.h"
#include "proxy/inspect.h"
#include "proxy/runtime.h"
#include "proxy/session.h"
#include "ws/utf8.h"

namespace weir::proxy {

namespace {

// Answers waiting unsent to one side are bounded: a sender that keeps
// sending refused messages and does not read cannot make Weir hold its
// answers without end (past it, messages are still refused and logged, with
// replied: false).
constexpr std::size_t kMaxPendingReplies = 256 * 1024;
// Buffers past this are given back once empty.
constexpr std::size_t kKeepCapacity = 64 * 1024;

const char* action_name(filters::MessageVerdict::Kind k) {
  switch (k) {
    case filters::MessageVerdict::Kind::reject: return "reject";
    case filters::MessageVerdict::Kind::close: return "close";
    default: return "drop";
  }
}

}  // namespace

std::size_t Session::reply_room(Side d) const {
  const Leg& sender = legs_[d];
  const std::size_t waiting = pumps_[other(d)].inject.size();
  if (sender.close_queued || sender.tx_dead || waiting >= kMaxPendingReplies) return 0;
  return kMaxPendingReplies - waiting;
}

// Called once the scan's own run is set up (relay.cpp), so that a failed
// write of the answers (side_lost) cannot overtake it.
void Session::after_inspect(Side d) {
  InspectState& st = *pumps_[d].ins;
  if (!st.replies.empty()) {
    Pump& back = pumps_[other(d)];
    Leg& sender = legs_[d];
    if (!sender.close_queued && !sender.tx_dead) {  // the sink's room said so: re-checked, the scan may have closed
      back.inject.append(st.replies);
      if (back.wpos == back.wend && !sender.io.write_armed) flush(other(d));
    }
    st.replies.clear();
    if (st.replies.capacity() > kKeepCapacity) std::string().swap(st.replies);
  }
  const std::size_t n = st.refusals.size();
  for (std::size_t i = 0; i < n; ++i) {
    const Refusal& r = st.refusals[i];
    log::Line line(log::Level::info, "message.refused");
    line.unum("id", id_)
        .str("trace_id", trace_.trace.hex())
        .str("route", route_->name)
        .str("filter", r.filter)
        .str("action", action_name(r.kind))
        .str("side", side_name(d))
        .str("reason", r.reason)
        .str("pointer", r.pointer)
        .str("opcode", r.opcode == ws::Opcode::text ? "text" : "binary")
        .unum("size", r.size);
    if (r.kind == filters::MessageVerdict::Kind::reject) line.boolean("replied", r.replied);
    if (!r.prefix.empty()) {
      // Text that is valid UTF-8 as it is (a cut may split a character:
      // then, like binary, base64).
      if (r.opcode == ws::Opcode::text && ws::is_valid_utf8(r.prefix)) line.str("payload_prefix", r.prefix);
      else line.str("payload_prefix_base64", http::base64_encode(r.prefix));
    }
    // Past kMaxRefusalsNoted in one read, the rest are counted on the last line.
    if (i + 1 == n && st.refusals_more != 0) line.unum("more_refused", st.refusals_more);
  }
  st.refusals.clear();
  st.refusals_more = 0;
}

}  // namespace weir::proxy
