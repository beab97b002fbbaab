#pragma once
// The filter API (design: "Filters"). A filter type owns a YAML key of a
// route (registered in filters/registry.cpp), parses its settings into an
// immutable Filter shared by every worker for the life of a config
// generation, and makes a per-session Instance when a session picks its
// route. Three hook points, each optional (Filter::hooks() says which):
//
//  - handshake, before any upstream is contacted: continue, refuse with an
//    HTTP status (and headers such as WWW-Authenticate or Retry-After), or
//    pending: the filter keeps ctx.resume and calls it later, on the
//    session's worker, with its verdict (e.g. after a JWKS fetch). If the
//    session dies first, the Resume turns into a no-op; the filter learns it
//    from Resume::alive() or from its Instance being destroyed.
//    Filters may add headers to the upstream request and to the 101.
//  - on_frame_header, for every data frame either way (control frames are
//    the relay's: always forwarded): forward, drop the message (decided on
//    its first frame), close the session with a code, or pause: the frame
//    waits, with everything after it from that side, until a time (throttling:
//    nothing more is read, TCP backpressure slows the sender, nothing is
//    lost). Every filter of the chain has seen a paused frame once; it is not
//    asked about again and goes when the pause ends. Runs on the fast pump;
//    no payload byte is touched.
//  - on_message, whole messages, unmasked: forward, replace (the filter
//    rewrote the payload), drop, close. A route whose chain has any such
//    filter relays through the inspecting pump; otherwise through the fast one.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/filter_types.h"
#include "http/head.h"
#include "net/cert_identity.h"
#include "observability/metrics.h"
#include "ws/frame.h"

namespace weir::core {
class Worker;
}

namespace weir::filters {

// Which way a frame goes. Equal to the relay's pump index (pump 0 reads the
// client and writes the upstream).
enum class Direction : std::uint8_t { to_upstream = 0, to_client = 1 };
constexpr std::string_view direction_name(Direction d) {
  return d == Direction::to_upstream ? "client_to_upstream" : "upstream_to_client";
}

struct Header {
  std::string name, value;
};
using Headers = std::vector<Header>;

struct HandshakeVerdict {
  enum class Kind : std::uint8_t { proceed, refuse, pending };
  Kind kind = Kind::proceed;
  unsigned status = 0;   // refuse: 400-599
  std::string reason;    // refuse: body and log text
  Headers headers;       // refuse: added to the error response

  static HandshakeVerdict proceed() { return {}; }
  static HandshakeVerdict refuse(unsigned status, std::string reason, Headers headers = {}) {
    return {Kind::refuse, status, std::move(reason), std::move(headers)};
  }
  static HandshakeVerdict pending() { return {Kind::pending, 0, {}, {}}; }
};

class SessionFilters;
struct PendingRun;
class Claims;  // filters/claims.h

// Given to a filter that answered pending: call it once, on the session's
// worker, with the verdict (proceed or refuse). After the session died, or a
// second time, it does nothing.
class Resume {
 public:
  Resume() = default;
  explicit Resume(std::shared_ptr<PendingRun> run) : run_(std::move(run)) {}
  void operator()(HandshakeVerdict v) const;
  bool alive() const;

 private:
  std::shared_ptr<PendingRun> run_;
};

struct HandshakeContext {
  const http::Head& request;
  std::string_view client_ip;        // socket peer, no port or brackets
  std::string_view client_cert;      // verified TLS client certificate subject (RFC 2253), or ""
  const config::Route& route;
  core::Worker& worker;              // the session's: defer(), timers
  Headers upstream_headers = {};     // added to the request to the upstream
  Headers response_headers = {};     // added to the client's 101
  Resume resume = {};                // valid while a hook may answer pending
  std::uint64_t session_id = 0;      // for the filter's log lines
  std::string_view trace_id = {};    // the session's trace (hex), for the same
  // What a filter may change of the request the upstream gets: each entry
  // replaces every field of that name (an empty value removes them), e.g.
  // a token taken out of Authorization or Sec-WebSocket-Protocol; and the
  // request target (a token taken out of the query), when not empty.
  Headers rewrite_headers = {};
  std::string rewrite_target = {};
  // The session must end by then (coarse ms, core/clock.h): Close 1008
  // "token expired". 0: no deadline.
  std::int64_t deadline_ms = 0;
  std::string user = {};             // who the session is (the admin API shows it)
  std::string token_id = {};         // its token's jti, when it has one (revocation)
  // The verified token's claims, set by the authenticating filter (jwt) for
  // the ones after it (authz); null when none authenticated the request.
  std::shared_ptr<const Claims> claims = {};
  // The verified TLS client certificate's subject CN and SANs (mTLS); null
  // or !present() without one. The session's, alive while the context is.
  const net::CertIdentity* client_cert_names = nullptr;
};

struct FrameVerdict {
  enum class Kind : std::uint8_t { forward, drop, close, pause };
  Kind kind = Kind::forward;
  std::uint16_t code = 0;            // close: RFC 6455 code sent to the frame's sender
  const char* reason = "";           // close: static text
  std::int64_t until_ms = 0;         // pause: this frame and the rest of the stream wait until then

  static FrameVerdict forward() { return {}; }
  static FrameVerdict drop() { return {Kind::drop}; }
  static FrameVerdict close(std::uint16_t code, const char* reason) { return {Kind::close, code, reason}; }
  static FrameVerdict pause(std::int64_t until_ms) { return {Kind::pause, 0, "", until_ms}; }
};

struct Message {
  ws::Opcode opcode;                 // text or binary
  std::string& payload;              // unmasked; a filter may rewrite it (then answer replace)
};

// A Close reason that fits the frame (RFC 6455: at most 123 bytes), cut at a
// UTF-8 character boundary, with "..." when cut.
inline std::string close_reason(std::string s) {
  if (s.size() <= 123) return s;
  std::size_t n = 120;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return s + "...";
}

struct MessageVerdict {
  // consume: the message was for Weir (an in-band token refresh): not
  // forwarded, and not counted as dropped.
  // reject: not forwarded (counted as dropped); `reply`, a text message,
  // goes back to the message's sender instead.
  enum class Kind : std::uint8_t { forward, replace, drop, close, consume, reject };
  Kind kind = Kind::forward;
  std::uint16_t code = 0;            // close: RFC 6455 code sent to the message's sender
  std::string reason;                // close: at most 123 bytes go on the wire; drop/reject: for the log
  std::int64_t deadline_ms = 0;      // consume: the session's new deadline (as HandshakeContext's); 0: unchanged
  // A refused message (drop, reject, close with a reason): where it failed
  // (a JSON pointer, or empty) and how many of its first bytes the audit log
  // may show (0: none; payloads are personal data).
  std::string pointer;
  std::uint32_t log_prefix = 0;
  std::string reply;                 // reject: the text payload sent back

  static MessageVerdict forward() { return {}; }
  static MessageVerdict replace() { return of(Kind::replace); }
  static MessageVerdict drop() { return of(Kind::drop); }
  static MessageVerdict close(std::uint16_t code, std::string reason) {
    MessageVerdict v = of(Kind::close);
    v.code = code;
    v.reason = std::move(reason);
    return v;
  }
  static MessageVerdict consume(std::int64_t deadline_ms = 0) {
    MessageVerdict v = of(Kind::consume);
    v.deadline_ms = deadline_ms;
    return v;
  }
  static MessageVerdict reject(std::string reply) {
    MessageVerdict v = of(Kind::reject);
    v.reply = std::move(reply);
    return v;
  }

 private:
  static MessageVerdict of(Kind k) {
    MessageVerdict v;
    v.kind = k;
    return v;
  }
};

// Per-session part: state for one session (a token bucket, a pending fetch).
// Lives on the session's worker and dies with the session.
class Instance {
 public:
  virtual ~Instance() = default;
  // Adds to one of its filter's counters (Filter::declare_metrics) in the
  // session's worker's cells; nothing when made outside a worker (tests).
  void count(obs::CounterId id, std::uint64_t n = 1) {
    if (cells_ != nullptr) cells_[id.at].add(n);
  }
  virtual HandshakeVerdict on_handshake(HandshakeContext&) { return {}; }
  virtual FrameVerdict on_frame_header(Direction, const ws::FrameHeader&, std::int64_t now_ms) {
    return {};
  }
  virtual MessageVerdict on_message(Direction, Message&) { return {}; }

 private:
  friend class SessionFilters;
  obs::Cell* cells_ = nullptr;  // the worker's (obs::Registry slot)
};

// kSession: the per-session part must live as long as the session (it holds
// something until then, e.g. a concurrency slot), though it has no frame or
// message hook; without it a handshake-only Instance goes at the upgrade.
enum Hook : unsigned { kHandshake = 1, kFrames = 2, kMessages = 4, kSession = 8 };

// A filter as configured on a route: immutable, shared by every worker.
class Filter : public config::FilterSettings {
 public:
  std::string_view name() const { return key; }  // its YAML key, for logs
  virtual unsigned hooks() const = 0;            // Hook bits
  virtual std::unique_ptr<Instance> instantiate() const = 0;
  // A filter's own counters, beside its code (docs/metrics.md): called once
  // per config generation, before any session of it exists, with its
  // route's name; it registers its series (the same name and labels find
  // the same series after a reload) and keeps the ids, which its instances
  // add to with Instance::count().
  virtual void declare_metrics(obs::Registry&, const std::string& route) const {}
  // Set by the first generation that declares this filter's metrics: a
  // generation rebuilt from the same config objects (a DNS answer, a reload
  // of a config given as a string) must not redo it while workers count
  // into the ids (Runtime::build).
  mutable std::atomic<bool> metrics_declared{false};
};

// One route's filters in order, and what they need.
class Chain {
 public:
  Chain() = default;
  explicit Chain(const std::vector<std::shared_ptr<const config::FilterSettings>>& settings);
  const std::vector<std::shared_ptr<const Filter>>& filters() const { return filters_; }
  unsigned hooks() const { return hooks_; }
  bool needs_payload() const { return (hooks_ & kMessages) != 0; }
  bool empty() const { return filters_.empty(); }

 private:
  std::vector<std::shared_ptr<const Filter>> filters_;
  unsigned hooks_ = 0;
};

}  // namespace weir::filters
