#pragma once
// The upstream leg of a session, behind an interface (docs/architecture.md,
// "A session"). A route's upstream kind decides how its sessions reach their
// upstream: make_upstream_leg() picks the implementation, open() connects and
// performs whatever exchange that upstream needs, and the outcome comes back
// to the session (its Owner) on its worker. Today's kind speaks WebSocket
// (ws_upstream.cpp: TCP or TLS to each configured upstream in the picker's
// order, then the HTTP upgrade); the session then relays frames over the
// socket it filled in (its Leg). A kind that does not speak WebSocket (HTTP
// and SSE for the LLM bridge) is another implementation of open(), and turns
// that upstream's messages into frames at the leg (Leg's read and write are
// the only calls the pumps make on it).
//
// The leg object lives only while opening: the session deletes it once the
// outcome is in, so a relaying session pays nothing for it.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/ref.h"
#include "http/head.h"
#include "ws/deflate.h"

namespace weir::core {
class ReadyTarget;
class Worker;
}  // namespace weir::core

namespace weir::upstream {
class PrewarmPools;
class Selection;
}

namespace weir::proxy {

struct CompiledRoute;
struct Leg;

// What the session asks for.
struct UpstreamOpen {
  const http::Head* request = nullptr;          // the client's upgrade request (as filters left it)
  std::span<const http::Field> extra_headers;   // from handshake filters
  std::string_view client_ip;
  bool client_tls = false;
  // Weir offered permessage-deflate of its own with these settings (an
  // inspecting route): the backend's answer is checked (ws/deflate.h) and
  // comes back in UpstreamOpened::deflate. Null: nothing of Weir's offered.
  const ws::DeflateSettings* deflate = nullptr;
};

// The outcome: open (the upstream's 101, bytes that came after it, the RSV
// bits its extensions use), or a status and reason for the client.
struct UpstreamOpened {
  unsigned status = 0;                   // 0: open
  std::string reason;                    // refused: for the client and the log
  const http::Head* response = nullptr;  // open: valid during the callback only
  std::string_view early;                // open: frame bytes after the head, valid during the callback
  std::uint8_t allowed_rsv = 0;
  // open: what permessage-deflate Weir agreed with the backend for itself
  // (an inspecting route's own offer); unset: not in use on that leg.
  std::optional<ws::DeflateParams> deflate;
  unsigned retry_after_s = 0;            // refused: a Retry-After for the client (no member available)
};

class UpstreamLeg {
 public:
  // The session's side.
  class Owner {
   public:
    // The transport is up; the exchange starts (it has its own deadline).
    virtual void upstream_connected() = 0;
    // Once, either way; the leg does nothing after it (the owner may delete it).
    virtual void upstream_opened(UpstreamOpened outcome) = 0;
    // Keeps the owner alive across an asynchronous step (a DNS answer).
    virtual core::Ref<core::RefCounted> hold() = 0;
    // Which member of the route's group is being tried, when it changes.
    virtual void upstream_chosen(std::size_t member) = 0;

   protected:
    ~Owner() = default;
  };

  virtual ~UpstreamLeg() = default;
  virtual void open(const UpstreamOpen& what) = 0;
  // An edge on the leg's socket while it opens (the session noted it in leg.io).
  virtual void on_ready() = 0;
  // The session gives up (a timeout, the client left): stop, report nothing.
  virtual void cancel() = 0;
  // The attempt in progress timed out (`why`: for the log): true when another
  // member is being tried now (the session re-arms its connect timeout),
  // false when none is left (the session refuses the client).
  virtual bool retry_elsewhere(std::string_view why) = 0;
};

// Everything an upstream kind may use.
struct UpstreamContext {
  UpstreamLeg::Owner& owner;
  Leg& leg;                      // the session's upstream socket, filled in by open()
  core::Worker& worker;
  core::ReadyTarget& target;     // registers the socket in the worker's poller
  unsigned tag;                  // with this tag
  const CompiledRoute& route;
  upstream::Selection& selection;  // the members to try, in order (the session's)
  std::uint16_t echo_port;       // the built-in echo upstream on 127.0.0.1
  // The worker's pre-warmed connections when the route's backend handshake
  // is generic (config::Route::generic_upstream_handshake), else null.
  upstream::PrewarmPools* prewarm = nullptr;
};

// The leg for the route's upstream kind.
std::unique_ptr<UpstreamLeg> make_upstream_leg(const UpstreamContext& ctx);

}  // namespace weir::proxy
