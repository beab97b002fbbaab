// Session, after the 101: the relay (its close logic: session_close.cpp). Each pump reads one side, scans frame
// headers in place and writes the run of frames it read to the other side with
// one write, non-blocking, without leaving the handler when the socket takes
// it all (the common case). A pump holds a pooled buffer only while bytes are
// in flight, and stops reading while its write is blocked: that buffer is the
// direction's high watermark, and TCP flow control pushes back on the sender.

#include <algorithm>
#include <cstring>
#include <vector>

#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "core/clock.h"
#include "net/stream.h"
#include "observability/log.h"
#include "proxy/handshake_state.h"
#include "proxy/inspect.h"
#include "proxy/relay_sink.h"
#include "proxy/runtime.h"
#include "proxy/session.h"
#include "filters/session_filters.h"

namespace weir::proxy {

namespace {

// Rounds of read+write a pump runs before yielding to other sessions.
constexpr int kMaxRounds = 8;

// A byte range of a run that a filter dropped: [from, from + len), offsets
// from the run's start; len may reach past the run (the rest of a frame).
struct DropRange {
  std::size_t from;
  std::uint64_t len;
};

// Counts messages and records the peer's Close; optionally re-masks client
// frames with fresh keys (XOR with old^new key in one pass); runs the frame
// filters of a route that has them.
template <bool Remask>
struct RelaySink {
  static constexpr bool wants_payload = Remask;
  RunOutcome& out;
  std::uint8_t* base;                    // the run's start in the buffer
  // old key ^ new key of the frame being re-masked; lives in the pump because
  // a frame's payload may span many scans.
  std::uint8_t* delta = nullptr;
  FrameGate gate;                        // the route's frame filters (gate.filters null: none)
  std::vector<DropRange>* drops = nullptr;

  bool on_frame(ws::FrameHeader& h, std::uint8_t* frame) {
    const bool data = !ws::is_control(h.opcode);
    if (data && gate.filters != nullptr) {
      const auto fate = gate.judge(h, out);
      if (fate == FrameGate::Fate::stop) return false;  // scanned again after the pause: counted then
      if (fate == FrameGate::Fate::dropped) {
        // Cut out of the run; not re-masked: it goes nowhere (but it was read).
        ++out.frames[static_cast<unsigned>(h.opcode) & 15];
        drops->push_back({static_cast<std::size_t>(frame - base), h.header_len + h.payload_len});
        return true;
      }
    }
    ++out.frames[static_cast<unsigned>(h.opcode) & 15];
    if (data) {
      out.saw_data = true;
      if (h.fin) ++out.messages;
      out.last = static_cast<std::size_t>(frame - base);
      out.last_h = h;
    }
    if constexpr (Remask) {
      std::uint8_t fresh[4];
      ws::random_mask(fresh);
      for (int i = 0; i < 4; ++i) delta[i] = h.mask[i] ^ fresh[i];
      std::memcpy(frame + h.header_len - 4, fresh, 4);
    }
    return true;
  }
  void on_payload(std::uint8_t* p, std::size_t n, std::uint64_t offset) {
    if constexpr (Remask) ws::apply_mask(p, n, delta, offset);
  }
  void on_close(std::uint16_t code, std::string_view reason) {
    out.saw_close = true;
    out.close_code = code;
    out.close_reason.assign(reason);
  }
};

// Adds a run's frames to the route's counters by opcode.
void count_frames(obs::Cell* cells, const RouteMetrics& m, Side d, const RunOutcome& o) {
  static constexpr ws::Opcode kCounted[] = {ws::Opcode::continuation, ws::Opcode::text, ws::Opcode::binary,
                                            ws::Opcode::close,        ws::Opcode::ping, ws::Opcode::pong};
  for (ws::Opcode op : kCounted)
    if (const std::uint32_t n = o.frames[static_cast<unsigned>(op)]) cells[m.frames[d][opcode_slot(op)].at].add(n);
}

// Removes the dropped ranges from the run buf[0, end) (offsets from buf);
// returns the run's new end. `last` moves with the bytes before it; the
// part of the final range past `end` is returned in tail_left.
std::size_t remove_drops(std::uint8_t* buf, std::size_t end, const std::vector<DropRange>& drops,
                         std::size_t& last, std::uint64_t& tail_left) {
  std::size_t out = drops.front().from;
  std::size_t removed_before_last = 0;
  tail_left = 0;
  for (std::size_t i = 0; i < drops.size(); ++i) {
    const std::size_t from = drops[i].from;
    const std::uint64_t to_full = from + drops[i].len;
    const std::size_t to = static_cast<std::size_t>(std::min<std::uint64_t>(to_full, end));
    if (to_full > end) tail_left = to_full - end;
    if (last != ws::Refragmenter::npos && last >= to) removed_before_last += to - from;
    const std::size_t next = i + 1 < drops.size() ? drops[i + 1].from : end;
    if (next > to) {
      std::memmove(buf + out, buf + to, next - to);
      out += next - to;
    }
  }
  if (last != ws::Refragmenter::npos) last -= removed_before_last;
  return out;
}

}  // namespace

void Session::start_relay() {
  const auto now = core::coarse_now_ms();
  phase_ = Phase::relay;
  release_pending_slot();
  worker_.stats().sessions_upgraded.add();
  {
    const RouteMetrics& m = compiled_->metrics;
    obs::Cell* cells = worker_.cells();
    cells[m.handshakes.at].add();
    cells[m.active.at].add();
    if (upstream_index_ < m.upstreams.size()) cells[m.upstreams[upstream_index_].active.at].add();
    obs::observe(cells, m.handshake_duration, static_cast<std::uint64_t>(core::now_us() - started_us_));
  }
  const auto& lim = route_->limits;
  for (Side d : kSides) {
    policy_[d].expect_masked = d == Side::client;
    policy_[d].allowed_rsv = hs_->allowed_rsv;
    policy_[d].max_frame_bytes = lim.max_frame_bytes;
    policy_[d].max_message_bytes = lim.max_message_bytes;
    policy_[d].check_utf8 = route_->strict;
    legs_[d].last_rx_ms = now;
    if (filters_ && filters_->messages()) {
      // Its filters read whole messages: the inspecting pump, which holds
      // one message at most (1009 past that).
      pumps_[d].ins = std::make_unique<InspectState>();
      policy_[d].max_message_bytes = std::min(lim.max_message_bytes, kMaxInspectedMessage);
      // Weir terminates permessage-deflate on each leg that agreed it: RSV1
      // is allowed from that leg only (no other extension was offered).
      const bool from_client = d == Side::client;
      policy_[d].allowed_rsv = (from_client ? hs_->deflate_client : hs_->deflate_upstream) ? 0x4 : 0;
      setup_deflate(*pumps_[d].ins, from_client, hs_->deflate_client, hs_->deflate_upstream, route_->compression);
    }
  }
  // Re-fragmenting is allowed where Weir understands every negotiated
  // extension (none, or permessage-deflate, whose RSV1 marks a message's
  // first frame only): RFC 6455 5.4.
  refrag_ = (hs_->allowed_rsv & ~0x4) == 0;
  // Handshake-only filters are done: their per-session parts go now.
  if (filters_ && !filters_->for_life()) filters_.reset();
  last_data_ms_ = now;
  // Frames that arrived with the handshakes are relayed first.
  pumps_[Side::client].pending_in.assign(hs_->in, hs_->req.size);
  {
    log::Line l(log::Level::info, "conn.open");
    l.unum("id", id_)
        .str("trace_id", trace_.trace.hex())
        .str("client", client_addr_)
        .str("route", route_->name)
        .str("upstream", upstream_addr_)
        .str("path", hs_->req.target)
        .num("handshake_us", core::now_us() - started_us_);
    if (!hs_->client_ip.empty() && hs_->client_ip != client_ip()) l.str("client_ip", hs_->client_ip);
    if (hs_->tls_version != nullptr) l.str("tls", hs_->tls_version);
    if (!hs_->sni.empty()) l.str("sni", hs_->sni);
    if (hs_->client_cert.present()) l.str("client_cert", hs_->client_cert.subject);
  }
  hs_.reset();
  arm_timer();
  pump(Side::client);
  if (phase_ == Phase::relay) pump(Side::upstream);
}

// Messages a filter dropped: the first of a session's drops each way is
// logged (limit.hit), the rest only counted (conn.close has the totals).
void Session::note_drops(Side d, std::uint64_t n) {
  if (n == 0) return;
  Pump& p = pumps_[d];
  if (p.dropped == 0) {
    log::Line(log::Level::info, "limit.hit")
        .unum("id", id_)
        .str("trace_id", trace_.trace.hex())
        .str("route", route_->name)
        .str("filter", filters_ ? filters_->decided_by() : "")
        .str("action", "drop")
        .str("side", side_name(d));
  }
  p.dropped += n;
}

const std::uint8_t* Session::out_bytes(const Pump& p) const {
  return p.ins ? reinterpret_cast<const std::uint8_t*>(p.ins->out.data()) : p.buf;
}

void Session::release_buffer(Pump& p) {
  if (p.buf) {
    worker_.buffers().release(p.buf, p.buf_size);
    p.buf = nullptr;
  }
}

// Reads from side d and forwards to side 1-d until the socket is drained, the
// write blocks, or kMaxRounds rounds ran.
void Session::pump(Side d) {
  Pump& p = pumps_[d];
  Leg& src = legs_[d];
  // A blocked write to the other side (data or our own frames) must finish
  // first: TLS requires the retry to carry exactly the same bytes, and the
  // arm_write handler resumes this pump when it has.
  if (phase_ != Phase::relay || src.rx_eof || p.wpos != p.wend || legs_[other(d)].io.write_armed) return;
  const std::size_t cap = route_->limits.buffer_bytes;
  for (int round = 0; round < kMaxRounds; ++round) {
    if (p.paused_until > 0) {
      // A filter throttles this side: no read until on_timer resumes it;
      // meanwhile TCP flow control pushes back on the sender.
      if (p.carry == 0) release_buffer(p);
      arm_timer();
      return;
    }
    if (!p.buf && !(p.buf = worker_.buffers().acquire(cap + kHeadroom, &p.buf_size))) {
      // Out of memory: this session cannot go on, the others can. Reading is
      // not armed again; the Close (no buffer needed) ends the session.
      worker_.stats().buffer_failures.add();
      log::Line(log::Level::warn, "buffer_exhausted").unum("id", id_).str("side", side_name(d));
      begin_close(ws::close_code::internal_error, "out of memory");
      return;
    }
    std::uint8_t* const base = p.buf + kHeadroom;
    const std::size_t room = std::min(cap, p.buf_size - kHeadroom) - p.carry;
    std::size_t n = 0;
    bool from_socket = false;
    if (p.rescan) {
      // A pause ended: the held frames are carried, scan them before reading
      // (the carry may fill the buffer).
      p.rescan = false;
    } else if (!p.pending_in.empty()) {
      n = std::min(room, p.pending_in.size());
      std::memcpy(base + p.carry, p.pending_in.data(), n);
      p.pending_in.erase(0, n);
    } else {
      const auto r = src.read(base + p.carry, room);
      n = r.n;
      from_socket = true;
      if (r.status != net::Io::done) {
        if (p.carry == 0) release_buffer(p);
        if (r.would_block()) {
          arm_read(d);
        } else {
          side_lost(d, net::describe(r), /*io_error=*/true);
        }
        return;
      }
    }
    const auto now = core::coarse_now_ms();
    src.last_rx_ms = now;
    src.ping_sent_ms = 0;
    const std::size_t total = p.carry + n;
    if (src.rx_closed) {
      // After its Close (or a protocol error) a side's bytes are ignored; we
      // only keep reading to see it go.
      p.carry = 0;
    } else {
      ws::ScanResult r;
      RunOutcome o;
      const std::uint64_t left_before = p.scanner.payload_left();
      const bool filtered = filters_ && filters_->frames();
      // Ranges to cut out of the run (reused; only filters drop).
      thread_local std::vector<DropRange> drops;
      if (filtered) {
        drops.clear();
        if (p.drop_left > 0) drops.push_back({0, p.drop_left});
      }
      const auto dir = static_cast<filters::Direction>(index(d));
      const FrameGate gate = filtered ? FrameGate{filters_.get(), dir, now, &p.dropping, &p.admit_next}
                                      : FrameGate{nullptr, dir};
      if (p.ins) {
        // Inspecting pump: messages are reassembled, ruled on, re-framed.
        InspectSink sink{*p.ins, o, *filters_, gate, d == Side::client, policy_[d].max_message_bytes,
                         policy_[d].check_utf8, reply_room(d)};
        r = p.scanner.scan(base, total, policy_[d], sink);
      } else {
        std::vector<DropRange>* cut = filtered ? &drops : nullptr;
        if (remask_ && d == Side::client) {
          RelaySink<true> sink{o, base, p.remask_delta, gate, cut};
          r = p.scanner.scan(base, total, policy_[d], sink);
        } else {
          RelaySink<false> sink{o, base, p.remask_delta, gate, cut};
          r = p.scanner.scan(base, total, policy_[d], sink);
        }
      }
      if (o.saw_data) last_data_ms_ = now;
      p.messages += o.messages;
      p.bytes += r.consumed;
      const RouteMetrics& m = compiled_->metrics;
      obs::Cell* const cells = worker_.cells();
      cells[m.messages[d].at].add(o.messages);
      cells[m.bytes[d].at].add(r.consumed);
      count_frames(cells, m, d, o);
      // The run to write: [start, end) of the buffer.
      std::size_t start = kHeadroom;
      std::size_t end = kHeadroom + r.consumed;
      std::uint64_t rest = p.scanner.payload_left();  // of a frame cut at the run's end
      std::size_t last = o.last;
      if (p.ins) {
        // Everything consumed went into the inspector; what it let through
        // is in its output, whole frames only.
        cells[m.dropped[d].at].add(o.dropped);
        note_drops(d, o.dropped);
        start = 0;
        end = p.ins->out.size();
      } else if (filtered && !drops.empty()) {
        note_drops(d, o.dropped);
        cells[m.dropped[d].at].add(o.dropped);
        std::uint64_t tail_left = 0;
        end = kHeadroom + remove_drops(base, r.consumed, drops, last, tail_left);
        p.drop_left = tail_left;
        if (tail_left > 0) rest = 0;  // the cut frame is dropped: nothing of it to re-fragment
      }
      if (refrag_ && !p.ins) {
        // The frame left open by the previous run continues at the start of
        // this one (unless it was dropped).
        const std::size_t lead = p.refrag.open() ? static_cast<std::size_t>(std::min<std::uint64_t>(left_before, end - start)) : 0;
        if (lead != 0 || (rest != 0 && last != ws::Refragmenter::npos)) {
          start = p.refrag.rewrite(p.buf, start, end, lead,
                                   last == ws::Refragmenter::npos ? last : kHeadroom + last, &o.last_h, rest);
        }
      }
      p.wpos = static_cast<std::uint32_t>(start);
      p.wend = static_cast<std::uint32_t>(end);
      p.keep_from = static_cast<std::uint32_t>(kHeadroom + r.consumed);
      p.keep_to = static_cast<std::uint32_t>(kHeadroom + total);
      Leg& dst = legs_[other(d)];
      if (dst.close_queued || dst.tx_dead) p.wend = p.wpos;  // nothing may follow a Close
      if (r.closed) {
        src.rx_closed = true;
        p.keep_to = p.keep_from;  // bytes after a Close are ignored
        record_end(side_name(d), o.saw_close ? o.close_code : 0, o.close_reason);
        const std::uint16_t code = o.saw_close ? o.close_code : 0;
        count_close_frame(cells, route_->name, d, /*sent=*/false, code);
        if (!dst.close_queued && !dst.tx_dead) {
          dst.close_queued = true;  // the peer's Close goes on in this run
          count_close_frame(cells, route_->name, other(d), /*sent=*/true, code);
        }
        if (!closing_) {
          closing_ = true;
          close_deadline_ms_ = now + route_->timeouts.close.count();
          arm_timer();
        }
      }
      // What the sink stopped on came first in the stream: it wins over a
      // malformed frame the scanner found after it in the same read.
      if (r.error && o.stop_code == 0) {
        p.keep_to = p.keep_from;
        protocol_error(d, r.error, r.reason);
      } else if (r.stopped && o.pause_until > 0) {
        // Throttled: the held frames stay in the buffer (keep_from..keep_to).
        p.paused_until = o.pause_until;
        p.rescan = true;
        cells[m.throttle[d].at].add();
      } else if (o.stop_is_protocol) {
        p.keep_to = p.keep_from;
        protocol_error(d, o.stop_code, o.stop_reason);
      } else if (r.stopped || o.stop_code != 0) {
        p.keep_to = p.keep_from;
        count_filter(cells, route_->name, filters_->decided_by(), /*refusal=*/false);
        protocol_error(d, o.stop_code, o.stop_reason, filters_->decided_by());
      }
    }
    // The run is set up: a failed write of the answers to d (side_lost)
    // cannot overtake it.
    if (p.ins && (!p.ins->refusals.empty() || !p.ins->replies.empty() || p.ins->refusals_more != 0))
      after_inspect(d);
    if (!flush(d)) return;  // resumes from arm_write's handler
    if (src.rx_closed) maybe_finish();
    if (phase_ != Phase::relay) return;
    if (from_socket && n < room && src.drained()) {
      // A short read drained the socket: wait for the next edge. (A side that
      // sent its Close is still read, to see it go; its bytes are ignored.)
      // Bytes carried over from the handshake say nothing about the socket,
      // whose edges the handshake reads used up: the next round reads it.
      // TLS returns a record at a time: there the socket BIO tells whether
      // its last recv() drained the socket and OpenSSL holds nothing more.
      if (p.carry == 0) release_buffer(p);
      if (p.paused_until > 0) {
        arm_timer();
        return;
      }
      arm_read(d);
      return;
    }
  }
  // Fairness: let other sessions on this worker run, then continue.
  auto self = core::Ref<Session>(this);
  worker_.defer([self, d] { self->pump(d); });
}

// Writes the pending run, then injected frames at a frame boundary. Returns
// false when the socket would block (a write wait is armed).
bool Session::flush(Side d) {
  Pump& p = pumps_[d];
  Leg& dst = legs_[other(d)];
  for (;;) {
    if (phase_ != Phase::relay) return true;
    if (dst.tx_dead) {
      p.wpos = p.wend;
      p.inject.clear();
      break;
    }
    const std::size_t data = p.wend - p.wpos;
    const bool boundary = out_at_boundary(d);
    const bool inj = !p.inject.empty() && data == 0 && boundary;
    if (data == 0 && !inj) break;
    const bool with_inject = data && boundary && !p.inject.empty();
    const auto r = data ? dst.write(out_bytes(p) + p.wpos, data, with_inject ? p.inject.data() : nullptr,
                                    with_inject ? p.inject.size() : 0)
                        : dst.write(p.inject.data(), p.inject.size());
    if (r.would_block()) {
      // The other side is not keeping up: this side is not read until it has.
      worker_.cells()[compiled_->metrics.backpressure[d].at].add();
      arm_write(d);
      return false;
    }
    if (r.status != net::Io::done) {
      dst.tx_dead = true;
      side_lost(other(d), net::describe(r), /*io_error=*/true);
      continue;
    }
    const std::size_t w = r.n;
    const std::size_t from_data = std::min(w, data);
    p.wpos += static_cast<std::uint32_t>(from_data);
    if (w > from_data) p.inject.erase(0, w - from_data);
  }
  after_flush(d);
  return true;
}

// Everything pending was written: carry the unscanned tail to the front and
// note a delivered Close.
void Session::after_flush(Side d) {
  Pump& p = pumps_[d];
  // keep_from is 0 when no scanned run was pending (a flush of our own
  // frames only, e.g. a keepalive ping): the carry stays as it is.
  if (p.keep_from != 0) {
    const std::uint32_t keep = p.keep_to - p.keep_from;
    if (keep && p.buf) std::memmove(p.buf + kHeadroom, p.buf + p.keep_from, keep);
    p.carry = keep;
  }
  p.wpos = p.wend = p.keep_from = p.keep_to = 0;
  // A burst of our own frames (reject answers) is not kept for the session's life.
  if (p.inject.empty() && p.inject.capacity() > 64 * 1024) std::string().swap(p.inject);
  if (p.ins) {
    p.ins->out.clear();
    if (p.ins->note_sent(core::coarse_now_ms())) arm_timer();
  }
  Leg& dst = legs_[other(d)];
  if (dst.close_queued && !dst.tx_closed && p.inject.empty() && !dst.tx_dead) {
    // The Close (forwarded or ours) is on the wire.
    dst.tx_closed = true;
    maybe_finish();
  }
}

// A wait is a flag: the socket is registered once, and an edge that arrived
// since the last attempt (while nobody waited) counts.
void Session::arm_read(Side d) {
  if (!legs_[d].io.arm_read()) return;
  auto self = core::Ref<Session>(this);
  worker_.defer([self, d] {
    if (self->phase_ == Phase::relay) self->pump(d);
  });
}

void Session::arm_write(Side d) {
  if (!legs_[other(d)].io.arm_write()) return;
  auto self = core::Ref<Session>(this);
  worker_.defer([self, d] {
    if (self->phase_ == Phase::relay && self->flush(d)) self->pump(d);
  });
}

// An edge on side s from the worker's poller: note it, and wake whoever waits
// for it (a handshake step, the setup watch on the client, or a pump).
void Session::on_ready(unsigned tag, std::uint32_t events) {
  if (phase_ == Phase::done) return;
  const Side side = tag == index(Side::client) ? Side::client : Side::upstream;
  Leg& s = legs_[side];
  if (s.io.note(events)) {
    // Bytes may have arrived since the socket BIO's last recv(): its
    // "drained" note is stale now. (A TLS read served from OpenSSL's buffer
    // never reaches the socket, so clearing io.rx before it does not mean
    // this edge was used up; without this, the pump would wait for an edge
    // that already came, with the bytes sitting in the socket.)
    s.tls_drained = false;
  }
  auto self = core::Ref<Session>(this);
  if (phase_ == Phase::relay) {
    relay_ready(side);
    return;
  }
  if (!hs_) return;
  if (side == Side::upstream && hs_->upstream) {
    hs_->upstream->on_ready();  // the upstream leg is opening
    return;
  }
  if (hs_->wait_next != nullptr && side == Side::client &&
      (hs_->wait_write ? s.io.tx : s.io.rx)) {
    const Step next = hs_->wait_next;
    hs_->wait_next = nullptr;
    (this->*next)();
    return;
  }
  if (side == Side::client && s.io.rx && (phase_ == Phase::connecting || phase_ == Phase::upstream_handshake)) {
    check_client_during_setup();
  }
}

void Session::relay_ready(Side d) {
  Leg& s = legs_[d];
  // Both waits are decided from the edges as they came, before either runs:
  // with TLS a blocked write may wait for readability (and a read for
  // writability), and the write retry must not use up the edge the reader
  // waits for.
  const core::Edges::Due due = s.io.due();
  if (due.write) {
    s.io.write_armed = false;
    // A blocked write towards this side (pump 1-d) first: it may free the
    // buffer the read below needs.
    if (flush(other(d))) pump(other(d));
    if (phase_ != Phase::relay) return;
  }
  if (due.read && s.io.read_armed) {
    s.io.read_armed = false;
    pump(d);
  }
}

}  // namespace weir::proxy
