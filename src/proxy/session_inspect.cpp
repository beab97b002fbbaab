// Session: what follows a scan of the inspecting pump. Each message a filter
// refused is logged (event message.refused, with a prefix of the payload only
// where the filter's log_payload allows), and the replies to rejected
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

// Replies waiting unsent to one side past this are not queued (the message
// is still refused and logged): a sender that does not read cannot make
// Weir hold its rejections without bound.
constexpr std::size_t kMaxPendingReplies = 256 * 1024;

const char* action_name(filters::MessageVerdict::Kind k) {
  switch (k) {
    case filters::MessageVerdict::Kind::reject: return "reject";
    case filters::MessageVerdict::Kind::close: return "close";
    default: return "drop";
  }
}

}  // namespace

void Session::after_inspect(Side d) {
  InspectState& st = *pumps_[d].ins;
  bool replied = false;
  if (!st.replies.empty()) {
    Pump& back = pumps_[other(d)];
    Leg& sender = legs_[d];
    replied = back.inject.size() < kMaxPendingReplies && !sender.close_queued && !sender.tx_dead;
    if (replied) {
      back.inject.append(st.replies);
      if (back.wpos == back.wend && !sender.io.write_armed) flush(other(d));
    }
    st.replies.clear();
  }
  for (const Refusal& r : st.refusals) {
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
    if (r.kind == filters::MessageVerdict::Kind::reject) line.boolean("replied", replied);
    if (!r.prefix.empty()) {
      // Text that is valid UTF-8 as it is (a cut may split a character:
      // then, like binary, base64).
      if (r.opcode == ws::Opcode::text && ws::is_valid_utf8(r.prefix)) line.str("payload_prefix", r.prefix);
      else line.str("payload_prefix_base64", http::base64_encode(r.prefix));
    }
  }
  st.refusals.clear();
}

}  // namespace weir::proxy
