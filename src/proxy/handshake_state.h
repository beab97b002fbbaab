#pragma once
// What a session holds only between accept and the 101 (freed when the relay
// starts). Private to src/proxy.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "filters/api.h"
#include "http/head.h"
#include "proxy/session.h"
#include "proxy/upstream_leg.h"
#include "upstream/group.h"

namespace weir::proxy {

struct Session::Handshake {
  std::string in;               // client request head (+ any early frames)
  http::Head req;
  std::size_t route_index = 0;
  std::string out;              // the response to the client (101 or refusal)
  std::uint8_t allowed_rsv = 0;
  // Inspecting routes: permessage-deflate as Weir terminates it on each leg
  // (unset: not used there), and the client's 101 answer for it.
  std::optional<ws::DeflateParams> deflate_client, deflate_upstream;
  std::string deflate_response;
  std::string deflate_offer;    // Weir's own offer to the backend (the request's field points here)
  std::size_t out_pos = 0;      // send_out progress
  Session::Step out_next = nullptr;
  // The pending readiness wait (wait_io): run wait_next when the client
  // becomes readable, or writable when wait_write.
  Session::Step wait_next = nullptr;
  bool wait_write = false;
  bool tls_started = false;     // the first byte looked like a TLS record
  std::string io_error;         // send_out failure, "" when it succeeded
  std::size_t listener = 0;
  // Client-side TLS, once its handshake is done.
  const char* tls_version = nullptr;
  std::string sni;
  net::CertIdentity client_cert; // the verified client certificate's names (subject "" = none)
  // What the route's handshake filters see and add (headers to the upstream
  // request and to the 101); set while and after they run.
  std::optional<filters::HandshakeContext> filter_ctx;
  // The upstream leg while it opens, and the filters' headers it sends.
  std::unique_ptr<UpstreamLeg> upstream;
  std::vector<http::Field> upstream_extra;
  // Which members of the group to try (upstream/group.h), and what it picks by.
  std::optional<upstream::Selection> selection;
  std::string pick_key;         // the hash policy's key
  bool had_sticky = false;      // a valid sticky cookie or a session-map entry named a member
  std::string map_key;          // sticky.session_map: group ":" client key ("" = none)
  // A session-map lookup in flight: points at the session until the answer
  // comes or the handshake state goes (the answer is then dropped).
  std::shared_ptr<Session*> map_wait;
  ~Handshake() {
    if (map_wait) *map_wait = nullptr;
  }
  std::string proxied_ip;       // the client a trusted proxy's PROXY header named ("" = none)
  bool tls_after_proxy = false; // the PROXY header comes before the TLS handshake
  std::string client_ip;        // who filters see: the peer, or past trusted proxies (net/cidr.h)
  std::string trace_hex;        // the session's trace id, for filters (filter_ctx points into it)
  std::string traceparent;      // the one the backend gets (upstream_extra points into it)
};

// A filter's headers as fields for the HTTP builders; a name or value that
// could split the head (CR, LF, NUL) is left out rather than sent.
inline std::vector<http::Field> header_fields(const std::vector<filters::Header>* headers) {
  std::vector<http::Field> out;
  if (headers == nullptr) return out;
  auto clean = [](std::string_view s) { return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos; };
  for (const auto& h : *headers)
    if (!h.name.empty() && clean(h.name) && clean(h.value)) out.push_back({h.name, h.value});
  return out;
}

}  // namespace weir::proxy
