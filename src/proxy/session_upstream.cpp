// A session's upstream: which member of its route's group it tries
// (upstream/group.h: sticky cookie, policy, retries), opening the leg, the
// 101 (with the sticky cookie) or the refusal, and the member's live count.

#include "core/clock.h"
#include "filters/claims.h"
#include "http/upgrade.h"
#include "observability/log.h"
#include "proxy/gateway.h"
#include "proxy/handshake_state.h"
#include "proxy/runtime.h"
#include "proxy/session.h"
#include "upstream/group_metrics.h"
#include "state/shared_counters.h"
#include "upstream/sticky.h"

#include <cstdio>

namespace weir::proxy {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The first cookie named `name` in the request's Cookie fields.
std::string_view cookie_value(const http::Head& req, std::string_view name) {
  for (const auto& f : req.fields) {
    if (!http::iequals(f.name, "cookie")) continue;
    std::string_view list = f.value;
    while (!list.empty()) {
      const auto semi = list.find(';');
      const std::string_view item = trim(list.substr(0, semi));
      list = semi == std::string_view::npos ? std::string_view() : list.substr(semi + 1);
      const auto eq = item.find('=');
      if (eq != std::string_view::npos && item.substr(0, eq) == name) return item.substr(eq + 1);
    }
  }
  return {};
}

// The first query parameter named `name` (as sent, not percent-decoded).
std::string_view query_value(std::string_view target, std::string_view name) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) return part.substr(eq + 1);
  }
  return {};
}

void count_sticky(obs::Cell* cells, std::string_view group, std::string_view result) {
  upstream::count_group_event(cells, upstream::GroupEvent::sticky, group, result);
}

}  // namespace

// The client's key for the hash policy or the session map ("" = none).
std::string Session::client_key(const config::HashKey& k) {
  auto& hs = *hs_;
  using From = config::HashKey::From;
  switch (k.from) {
    case From::ip: return std::string(client_ip());
    case From::header: return std::string(hs.req.get(k.name));
    case From::cookie: return std::string(cookie_value(hs.req, k.name));
    case From::query: return std::string(query_value(hs.req.target, k.name));
    case From::claim:
      if (hs.filter_ctx && hs.filter_ctx->claims) return hs.filter_ctx->claims->text(k.name).value_or("");
      break;
  }
  return {};
}

void Session::connect_upstream() {
  phase_ = Phase::connecting;
  close_deadline_ms_ = core::coarse_now_ms() + route_->timeouts.connect.count();
  arm_timer();
  auto& hs = *hs_;
  const upstream::Group& group = *compiled_->group;
  const auto& gc = group.conf();
  if (gc.policy == config::UpstreamGroup::Policy::hash) {
    hs.pick_key = client_key(gc.hash);
    // No key (the header or claim is missing): the client's address.
    if (hs.pick_key.empty()) hs.pick_key = client_ip();
  }
  if (gc.session_map) {
    // The member this key's last session had, from Redis; the handshake
    // waits for the answer (at most Redis's reply timeout, 1 s).
    const std::string key = client_key(gc.map.key);
    auto* store = state::SharedCounters::get();
    if (!key.empty() && store != nullptr) {
      hs.map_key = std::string(group.label()) + ":" + key;
      if (store->up()) {
        hs.map_wait = std::make_shared<Session*>(this);
        store->find(hs.map_key, worker_, [wait = hs.map_wait](std::string member) {
          if (Session* self = *wait; self != nullptr && !self->finished_ && self->phase_ == Phase::connecting) {
            self->hs_->map_wait.reset();
            *wait = nullptr;
            self->open_upstream(upstream::parse_member_id(member));
          }
        });
        return;
      }
    }
  }
  std::optional<std::uint64_t> sticky;
  hs.had_sticky = false;
  if (gc.sticky_cookie) {
    const std::string_view v = cookie_value(hs.req, gc.cookie.name);
    if (!v.empty()) {
      sticky = upstream::verify_sticky(gc.cookie.key, group.label(), v);
      if (!sticky) count_sticky(worker_.cells(), group.label(), "forged");
    }
  }
  open_upstream(sticky);
}

// sticky: the member a valid sticky cookie or the session map named.
void Session::open_upstream(std::optional<std::uint64_t> sticky) {
  auto& hs = *hs_;
  const upstream::Group& group = *compiled_->group;
  upstream::PickInput in;
  in.hash_key = hs.pick_key;
  in.sticky = sticky;
  in.sticky_yields = route_->rebalance_sticky;
  hs.had_sticky = sticky.has_value();
  hs.selection.emplace(group, gateway_.picker(), in);
  hs.upstream = make_upstream_leg(
      {*this, legs_[Side::upstream], worker_, *this, index(Side::upstream), *compiled_, *hs.selection, gateway_.echo_port,
       route_->generic_upstream_handshake ? gateway_.prewarm() : nullptr});
  hs.upstream_extra = header_fields(hs.filter_ctx ? &hs.filter_ctx->upstream_headers : nullptr);
  hs.traceparent = obs::make_traceparent(trace_);
  hs.upstream_extra.push_back({"traceparent", hs.traceparent});
  hs.upstream->open({&hs.req, hs.upstream_extra, client_ip(), legs_[Side::client].ssl != nullptr,
                     hs.deflate_offer.empty() ? nullptr : &route_->compression});
}

void Session::upstream_chosen(std::size_t member) {
  const upstream::Group& group = *compiled_->group;
  if (member_live_) group.state(upstream_index_).add_live(worker_.index(), -1);
  upstream_index_ = static_cast<std::uint16_t>(member);
  upstream_addr_ = route_->upstreams[member].text;
  group.state(member).add_live(worker_.index(), 1);
  member_live_ = true;
}

void Session::release_member() {
  if (map_key_) {  // this session no longer keeps its session-map entry alive
    if (auto* store = state::SharedCounters::get()) store->unhold(std::move(*map_key_));
    map_key_.reset();
  }
  if (!member_live_) return;
  member_live_ = false;
  compiled_->group->state(upstream_index_).add_live(worker_.index(), -1);
}

void Session::upstream_connected() {
  phase_ = Phase::upstream_handshake;
  close_deadline_ms_ = core::coarse_now_ms() + route_->timeouts.upstream_handshake.count();
  arm_timer();
}

// A connect or upstream handshake timed out: another member, or the client's 504.
bool Session::retry_upstream(std::string_view why) {
  if (!hs_ || !hs_->upstream || !hs_->upstream->retry_elsewhere(why)) return false;
  phase_ = Phase::connecting;
  close_deadline_ms_ = core::coarse_now_ms() + route_->timeouts.connect.count();
  arm_timer();
  return true;
}

void Session::upstream_opened(UpstreamOpened o) {
  // The leg is done. We are inside its call: it goes after this handler.
  worker_.defer([leg = hs_->upstream.release()] { delete leg; });
  if (o.status != 0) {
    release_member();
    if (o.retry_after_s != 0) {
      const std::vector<filters::Header> h{{"Retry-After", std::to_string(o.retry_after_s)}};
      refuse(o.status, std::move(o.reason), &h);
    } else {
      refuse(o.status, std::move(o.reason));
    }
    return;
  }
  hs_->allowed_rsv = o.allowed_rsv;
  hs_->deflate_upstream = o.deflate;
  // Frames that came with the 101 are relayed first.
  pumps_[Side::upstream].pending_in.assign(o.early);
  auto extra = header_fields(hs_->filter_ctx ? &hs_->filter_ctx->response_headers : nullptr);
  std::string set_cookie;  // extra points into it until the response is built
  const upstream::Group& group = *compiled_->group;
  const auto& gc = group.conf();
  const bool hit = hs_->selection && hs_->selection->sticky_hit() && hs_->selection->attempts() == 1;
  if (gc.session_map && !hs_->map_key.empty()) {
    count_sticky(worker_.cells(), group.label(), hit ? "hit" : hs_->had_sticky ? "moved" : "new");
    if (auto* store = state::SharedCounters::get()) {
      char id[17];
      std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(group.state(upstream_index_).id));
      store->hold(hs_->map_key, id, gc.map.ttl.count());
      map_key_ = std::make_unique<std::string>(std::move(hs_->map_key));
    }
  }
  if (gc.sticky_cookie) {
    if (hit) {
      count_sticky(worker_.cells(), group.label(), "hit");
    } else {
      count_sticky(worker_.cells(), group.label(), hs_->had_sticky ? "moved" : "new");
      const auto& c = gc.cookie;
      set_cookie = c.name + "=" + upstream::sign_sticky(c.key, group.label(), group.state(upstream_index_).id) +
                        "; Path=" + c.path + "; HttpOnly" + (c.secure ? "; Secure" : "") +
                        (c.ttl.count() > 0 ? "; Max-Age=" + std::to_string(c.ttl.count() / 1000) : "");
      extra.push_back({"Set-Cookie", set_cookie});
    }
  }
  // An inspecting route answers the client's extensions itself.
  const bool own_extensions = compiled_->chain.needs_payload();
  if (own_extensions && hs_->deflate_client) extra.push_back({"Sec-WebSocket-Extensions", hs_->deflate_response});
  hs_->out = http::build_switching_response(hs_->req, *o.response, extra, own_extensions);
  hs_->out_pos = 0;
  phase_ = Phase::responding;
  send_out(&Session::on_response_sent);
}

}  // namespace weir::proxy
