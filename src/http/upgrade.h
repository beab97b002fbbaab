#pragma once
// The WebSocket opening handshake as a proxy sees it (RFC 6455 section 4):
// validate the client's request, build the request to the backend, check the
// backend's answer, and build what the client gets back. No I/O.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "http/head.h"

namespace weir::http {

// status 0 means accepted; otherwise the HTTP status and a short reason for the
// response body and the audit log.
struct Refusal {
  unsigned status = 0;
  std::string reason;
  explicit operator bool() const { return status != 0; }
};

// RFC 6455 4.2.1 checks on a parsed request head.
Refusal validate_upgrade_request(const Head& req);

// base64(SHA-1(key + GUID)).
std::string compute_accept(std::string_view key);

// "Bad Request" for 400 etc.
std::string_view status_text(unsigned status);

// A complete refusal response with the reason as text/plain body; 426 carries
// Sec-WebSocket-Version: 13 and Upgrade: websocket; always Connection: close.
// `extra`: more header fields (a filter's Retry-After, WWW-Authenticate).
std::string error_response(unsigned status, std::string_view reason, std::span<const Field> extra = {});

struct ForwardInfo {
  std::string_view client_ip;   // without port; IPv6 unbracketed
  std::string_view proto;       // "ws" or "wss"
};

// The request Weir sends to the backend: the client's request line and
// end-to-end headers (the client's Sec-WebSocket-Key, subprotocol and
// extension offers included), without hop-by-hop headers, plus
// X-Forwarded-For/-Proto/-Host and Forwarded.
// `extra`: fields added by filters (after the forwarded ones).
std::string build_upstream_request(const Head& req, const ForwardInfo& info,
                                   std::span<const Field> extra = {});

struct UpstreamVerdict {
  Refusal refusal;                // 502 with the backend's status in the reason
  std::uint8_t allowed_rsv = 0;   // RSV bits the negotiated extensions use
};

// Checks the backend's response against what the client asked for.
UpstreamVerdict check_upstream_response(const Head& resp, const Head& client_req);

// The 101 for the client: backend's subprotocol/extensions and its other
// end-to-end headers (e.g. Set-Cookie), with our own Accept.
// own_extensions: Weir negotiated the client's extensions itself (an
// inspecting route): the backend's Sec-WebSocket-Extensions are left out
// (Weir's own answer comes in `extra`).
std::string build_switching_response(const Head& client_req, const Head& upstream_resp,
                                     std::span<const Field> extra = {}, bool own_extensions = false);

// True for headers a proxy must not forward (RFC 9110 7.6.1): the standard
// hop-by-hop names and any name listed in the message's Connection fields.
bool is_hop_by_hop(std::string_view name, const Head& message);

}  // namespace weir::http
