// Session: how it ends. A Close queued to a side goes at the next frame
// boundary of the stream towards it (relay.cpp); a lost side is reported to
// the other with a Close; the first to end (peer, filter, Weir) is recorded
// once for the session_close line.

#include <algorithm>
#include <cstring>

#include <openssl/ssl.h>
#include <sys/socket.h>

#include "core/clock.h"
#include "filters/session_filters.h"
#include "net/stream.h"
#include "observability/log.h"
#include "proxy/handshake_state.h"
#include "proxy/runtime.h"
#include "proxy/session.h"
#include "upstream/group.h"
#include "upstream/group_metrics.h"

namespace weir::proxy {

// Queues a Close to side s (sent at the next frame boundary of the stream
// towards it); nothing else is sent to s afterwards.
void Session::queue_close(Side s, std::uint16_t code, std::string_view reason) {
  Leg& side = legs_[s];
  if (side.close_queued || side.tx_dead || side.rx_eof) return;
  side.close_queued = true;
  if (route_) count_close_frame(worker_.cells(), route_->name, s, /*sent=*/true, code);
  std::uint8_t frame[2 + 4 + ws::max_control_payload + 8];
  const std::size_t n = ws::build_close_frame(frame, code, reason, /*masked=*/s == Side::upstream);
  // Bytes already relayed towards s go first; the Close follows at the next
  // frame boundary.
  Pump& p = pumps_[other(s)];
  p.inject.append(reinterpret_cast<const char*>(frame), n);
  if (p.wpos == p.wend && !side.io.write_armed) flush(other(s));
}

void Session::queue_ping(Side s) {
  Leg& side = legs_[s];
  if (side.close_queued || side.tx_dead) return;
  std::uint8_t frame[2 + 4 + 8];
  const std::size_t n = ws::build_control_frame(frame, ws::Opcode::ping, "weir", s == Side::upstream);
  Pump& p = pumps_[other(s)];
  p.inject.append(reinterpret_cast<const char*>(frame), n);
  if (p.wpos == p.wend && !side.io.write_armed) flush(other(s));
}

void Session::record_end(const char* by, std::uint16_t code, std::string_view reason) {
  if (closed_by_) return;
  closed_by_ = by;
  close_code_ = code;
  close_reason_.assign(reason);
}

void Session::begin_close(std::uint16_t code, std::string_view reason) {
  record_end("weir", code, reason);
  if (!closing_) {
    closing_ = true;
    close_deadline_ms_ = core::coarse_now_ms() + (route_ ? route_->timeouts.close.count() : 1000);
    arm_timer();
  }
  queue_close(Side::client, code, reason);
  queue_close(Side::upstream, code, reason);
  maybe_finish();
}

// Side s broke the protocol in frames it sent (code 1002, 1007 or 1009): it
// gets a Close with that code; the other side learns why.
void Session::protocol_error(Side d, std::uint16_t code, const char* reason, std::string_view filter) {
  if (filter.empty()) worker_.cells()[compiled_->metrics.protocol_errors[d].at].add();
  legs_[d].rx_closed = true;
  const std::string why = fmt::format("{} {}", d == Side::client ? "client" : "upstream", reason);
  {
    log::Line l(log::Level::info, filter.empty() ? "protocol.error" : "limit.hit");
    l.unum("id", id_).str("side", side_name(d)).num("close_code", code).str("reason", reason);
    if (!filter.empty()) l.str("filter", filter).str("action", "close");
    if (route_) l.str("route", route_->name);
    if (!trace_.trace.empty()) l.str("trace_id", trace_.trace.hex());
  }
  record_end("weir", code, why);
  // The valid frames before the bad one still go out first (queue_close would
  // drop them), so only append our Close here.
  Leg& peer = legs_[other(d)];
  if (!peer.close_queued && !peer.tx_dead) {
    peer.close_queued = true;
    count_close_frame(worker_.cells(), route_->name, other(d), /*sent=*/true, code);
    std::uint8_t frame[2 + 4 + ws::max_control_payload + 8];
    const std::size_t n = ws::build_close_frame(frame, code, why, /*masked=*/d == Side::client);
    pumps_[d].inject.append(reinterpret_cast<const char*>(frame), n);
  }
  queue_close(d, code, reason);
  // The violation was found inside a frame part of which is already on its
  // way: the other side cannot be given a clean Close, so its connection is cut.
  if (!out_at_boundary(d)) side_lost(other(d), "stream cut mid-frame by a protocol error");
  if (!closing_) {
    closing_ = true;
    close_deadline_ms_ = core::coarse_now_ms() + route_->timeouts.close.count();
    arm_timer();
  }
}

// Side s is gone (EOF without Close, reset, keepalive timeout, write error).
void Session::side_lost(Side s, std::string_view why, bool io_error) {
  Leg& side = legs_[s];
  if (side.rx_eof) return;
  side.rx_eof = true;
  side.tx_dead = true;
  side.cut();
  if (!side.rx_closed) {
    // Passive health: a backend whose connection fails or ends without a
    // Close (reset, crash) fails like a refused connect, unless the session
    // was already ending or the client went first; cuts Weir makes itself
    // (a client's protocol error mid-frame, a keepalive timeout) never count.
    if (io_error && s == Side::upstream && phase_ == Phase::relay && !closing_ && !legs_[Side::client].rx_eof) {
      const upstream::Group& g = *compiled_->group;
      if (g.report(upstream_index_, false, core::coarse_now_ms()))
        upstream::count_group_event(worker_.cells(), upstream::GroupEvent::ejection, g.label(), upstream_addr_);
    }
    record_end(side_name(s), ws::close_code::abnormal, why);
    if (s == Side::client) queue_close(Side::upstream, ws::close_code::going_away, "client went away");
    else queue_close(Side::client, ws::close_code::internal_error, "upstream connection lost");
  }
  // It left inside a frame part of which the other side already has: a Close
  // cannot follow (it would be read as payload), so that side is cut too.
  if (!out_at_boundary(s)) side_lost(other(s), "peer lost inside a frame");
  if (!closing_ && phase_ == Phase::relay) {
    closing_ = true;
    close_deadline_ms_ = core::coarse_now_ms() + route_->timeouts.close.count();
    arm_timer();
  }
  maybe_finish();
}

void Session::maybe_finish() {
  if (phase_ != Phase::relay) return;
  if (legs_[Side::client].finished() && legs_[Side::upstream].finished()) finish();
}

void Session::shutdown(std::uint16_t code, std::string_view reason) {
  if (phase_ == Phase::relay) {
    begin_close(code, reason);
  } else if (phase_ == Phase::proxy_header || phase_ == Phase::tls_handshake || phase_ == Phase::responding) {
    // No HTTP can be spoken yet, or a 101 is half written: just close.
    phase_ = Phase::done;
    finish();
  } else if (phase_ != Phase::done) {
    // Still handshaking: nothing was promised yet.
    refuse(503, std::string(reason));
  }
}

// Closes both sockets (which also takes them out of the poller). Buffers go
// back to the pool in the destructor, once the last handler holding a Ref has
// run: a caller up the stack may still be using them.
void Session::finish() {
  if (finished_) return;
  finished_ = true;
  if (filters_) filters_->cancel();  // a pending handshake filter holds a Ref to us
  const bool was_relay = phase_ == Phase::relay;
  phase_ = Phase::done;
  worker_.cancel_timer(this);
  release_member();
  for (Side i : kSides) {
    Leg& s = legs_[i];
    // close_notify, best effort and only on a live, established TLS link
    // (never after the socket closed: its descriptor may already be reused).
    if (s.ssl != nullptr && s.fd >= 0 && !s.tx_dead && SSL_is_init_finished(s.ssl) &&
        (SSL_get_shutdown(s.ssl) & SSL_SENT_SHUTDOWN) == 0) {
      SSL_shutdown(s.ssl);
    }
    close_fd(i);
  }
  if (registered_) {
    registered_ = false;
    // Events of the batch being dispatched may still name this session:
    // let go of it only after the current handler.
    worker_.defer([ref = std::move(poll_ref_)] {});
  }
  if (was_relay) {
    worker_.stats().sessions_closed.add();
    const RouteMetrics& m = compiled_->metrics;
    obs::Cell* cells = worker_.cells();
    cells[m.active.at].sub();
    if (upstream_index_ < m.upstreams.size()) cells[m.upstreams[upstream_index_].active.at].sub();
    obs::observe(cells, m.lifetime, static_cast<std::uint64_t>(core::coarse_now_ms() - started_ms_) * 1000);
    log_close();
  }
  hs_.reset();
  worker_.detach(this);
}

void Session::log_close() {
  log::Line(log::Level::info, "conn.close")
      .unum("id", id_)
      .str("trace_id", trace_.trace.hex())
      .str("client", client_addr_)
      .str("route", route_ ? route_->name : "")
      .str("upstream", upstream_addr_)
      .str("user", identity_ ? std::string_view(identity_->user) : std::string_view())
      .str("closed_by", closed_by_ ? closed_by_ : "unknown")
      .num("close_code", close_code_)
      .str("reason", close_reason_)
      .unum("bytes_in", pumps_[Side::client].bytes)
      .unum("bytes_out", pumps_[Side::upstream].bytes)
      .unum("msgs_in", pumps_[Side::client].messages)
      .unum("msgs_out", pumps_[Side::upstream].messages)
      .unum("msgs_dropped_in", pumps_[Side::client].dropped)
      .unum("msgs_dropped_out", pumps_[Side::upstream].dropped)
      .num("duration_ms", core::coarse_now_ms() - started_ms_);
}

bool Session::describe(core::SessionInfo& out) const {
  static constexpr const char* kPhases[] = {"proxy_header", "tls_handshake", "request", "filtering", "connecting",
                                            "upstream_handshake", "responding", "relay", "done"};
  out.id = id_;
  out.client = client_addr_;
  out.route = route_ ? route_->name : "";
  out.upstream = std::string(upstream_addr_);
  if (member_live_) {
    out.member = &compiled_->group->state(upstream_index_);
    const auto& gc = compiled_->group->conf();
    out.pinned = (gc.sticky_cookie || gc.session_map) && !route_->rebalance_sticky;
  }
  if (!trace_.trace.empty()) out.trace_id = trace_.trace.hex();
  if (identity_) {
    out.user = identity_->user;
    out.token_id = identity_->token_id;
  }
  out.state = closing_ ? "closing" : kPhases[static_cast<unsigned>(phase_)];
  out.age_ms = core::coarse_now_ms() - started_ms_;
  out.bytes_in = pumps_[Side::client].bytes;
  out.bytes_out = pumps_[Side::upstream].bytes;
  out.messages_in = pumps_[Side::client].messages;
  out.messages_out = pumps_[Side::upstream].messages;
  return true;
}

}  // namespace weir::proxy
