// Session deadlines: one entry on the worker's timer wheel per session for
// the handshake phases (their timeouts) and the relay (idle, lifetime,
// keepalive pings, the close handshake).

#include "core/clock.h"
#include "proxy/handshake_state.h"
#include "proxy/inspect.h"
#include "proxy/gateway.h"
#include "proxy/runtime.h"
#include "proxy/session.h"

namespace weir::proxy {

// One entry per session on the worker's timer wheel, moved at phase changes
// and when it fires rather than per message: activity only moves time stamps.
void Session::arm_timer() {
  std::int64_t deadline;
  if (phase_ == Phase::done) return;
  if (phase_ != Phase::relay || closing_) {
    deadline = close_deadline_ms_;
    if (phase_ == Phase::relay)
      for (const auto& p : pumps_)
        if (p.paused_until > 0) deadline = std::min(deadline, p.paused_until);
  } else {
    const auto& t = route_->timeouts;
    const auto& k = route_->keepalive;
    deadline = INT64_MAX;
    if (t.idle.count() > 0) deadline = std::min(deadline, last_data_ms_ + t.idle.count());
    if (t.max_lifetime.count() > 0) deadline = std::min(deadline, started_ms_ + t.max_lifetime.count());
    if (k.interval.count() > 0) {
      for (const auto& s : legs_) {
        deadline = std::min(deadline, s.ping_sent_ms ? s.ping_sent_ms + k.timeout.count()
                                                     : s.last_rx_ms + k.interval.count());
      }
    }
    if (route_gone_ms_ > 0) deadline = std::min(deadline, route_gone_ms_);
    if (deadline_ms_ > 0) deadline = std::min(deadline, deadline_ms_);
    for (const auto& p : pumps_) {
      if (p.paused_until > 0) deadline = std::min(deadline, p.paused_until);
      if (p.ins && p.ins->trim_at_ms > 0) deadline = std::min(deadline, p.ins->trim_at_ms);
    }
    if (deadline == INT64_MAX) {
      worker_.cancel_timer(this);
      return;
    }
  }
  worker_.schedule_timer(this, deadline);
}

void Session::on_due(std::int64_t now_ms) {
  if (phase_ == Phase::done) return;
  auto self = core::Ref<Session>(this);
  on_timer(now_ms);
}

// now: the wheel's time, which is at least the deadline that fired (the
// coarse clock may lag it by a jiffy).
void Session::on_timer(std::int64_t now) {
  if (phase_ != Phase::relay) {
    if (now < close_deadline_ms_) return arm_timer();
    switch (phase_) {
      case Phase::proxy_header:
        log_refusal(408, "PROXY protocol header timeout", "proxy_protocol");
        finish();
        return;
      case Phase::tls_handshake:
        tls_failed("TLS handshake timeout");
        return;
      case Phase::request:
        log_refusal(408, "handshake timeout");
        finish();
        return;
      case Phase::filtering:
        // A filter that waits (a key fetch, a shared-state lookup) did not
        // answer within the handshake timeout.
        refuse(503, "handshake filter did not answer in time");
        return;
      case Phase::connecting:
        count_upstream_failure(worker_.cells(), route_->name, upstream_addr_, "timeout");
        if (retry_upstream("connect timeout")) return;
        upstream_failed(504, "upstream connect timeout");
        return;
      case Phase::upstream_handshake:
        count_upstream_failure(worker_.cells(), route_->name, upstream_addr_, "timeout");
        if (retry_upstream("upstream handshake timeout")) return;
        upstream_failed(504, "upstream handshake timeout");
        return;
      default:
        finish();
        return;
    }
  }
  for (Side d : kSides) {
    Pump& p = pumps_[d];
    if (p.ins) p.ins->trim(now);
    if (p.paused_until > 0 && now >= p.paused_until) {
      // A throttle ended: read that side again.
      p.paused_until = 0;
      pump(d);
      if (phase_ != Phase::relay) return;
    }
  }
  if (closing_) {
    if (now >= close_deadline_ms_) {
      record_end("weir", 0, "");  // only if nobody ended it before the close began
      finish();
      return;
    }
    return arm_timer();
  }
  const auto& t = route_->timeouts;
  const auto& k = route_->keepalive;
  if (route_gone_ms_ > 0 && now >= route_gone_ms_) {
    begin_close(ws::close_code::service_restart, "route removed by a config reload");
    return;
  }
  if (deadline_ms_ > 0 && now >= deadline_ms_) {
    // A token refreshed in band since moved it (filters::MessageVerdict::consume).
    const std::int64_t refreshed = filters_ ? filters_->take_deadline() : 0;
    if (refreshed > now) {
      deadline_ms_ = refreshed;
      return arm_timer();
    }
    begin_close(ws::close_code::policy_violation, "token expired");
    return;
  }
  if (t.max_lifetime.count() > 0 && now >= started_ms_ + t.max_lifetime.count()) {
    begin_close(ws::close_code::going_away, "max lifetime reached");
    return;
  }
  // A throttled side has data waiting in its pump: it is neither idle nor
  // silent (its pong may be queued behind those frames, unread on purpose).
  const bool throttled = pumps_[Side::client].paused_until > 0 || pumps_[Side::upstream].paused_until > 0;
  if (throttled) last_data_ms_ = now;
  if (t.idle.count() > 0 && now >= last_data_ms_ + t.idle.count()) {
    begin_close(ws::close_code::going_away, "idle timeout");
    return;
  }
  if (k.interval.count() > 0) {
    for (Side s : kSides) {
      Leg& side = legs_[s];
      if (pumps_[s].paused_until > 0) {
        side.last_rx_ms = now;
        side.ping_sent_ms = 0;
        continue;
      }
      if (side.ping_sent_ms && now >= side.ping_sent_ms + k.timeout.count()) {
        side_lost(s, "keepalive timeout");
        if (phase_ != Phase::relay) return;
      } else if (!side.ping_sent_ms && now >= side.last_rx_ms + k.interval.count()) {
        side.ping_sent_ms = now;
        queue_ping(s);
      }
    }
  }
  arm_timer();
}

// Only relaying sessions are touched: one still in its handshake finishes it
// under the generation it was accepted with (its 101 or refusal is near).
void Session::on_reload() {
  if (phase_ != Phase::relay || closing_ || route_gone_ms_ > 0) return;
  const auto& now_rt = gateway_.runtime();
  if (now_rt->find(route_->name) != nullptr) return;
  route_gone_ms_ = core::coarse_now_ms() + now_rt->config->removed_route_grace.count();
  arm_timer();
}

}  // namespace weir::proxy
