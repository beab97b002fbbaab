#pragma once
// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and
// 2) that a load balancer in front of Weir sends before anything else, to
// say whom the connection is really from. I/O-free: give it the bytes read
// so far. Believed only from trusted_proxies (the session checks the peer
// before it looks for a header).

#include <cstddef>
#include <cstdint>
#include <string>

namespace weir::net {

struct ProxyHeader {
  enum class Status : std::uint8_t { need_more, done, invalid };
  Status status = Status::need_more;
  std::size_t size = 0;      // done: bytes the header took (to consume)
  bool local = false;        // done: v2 LOCAL or v1 UNKNOWN: no address, keep the peer's
  std::string source;        // done and !local: the client's address (text, no port)
  std::uint16_t source_port = 0;
  const char* error = "";    // invalid: why
};

// Longest header Weir reads: v1 is at most 107 bytes; a v2 header with TLVs
// may be longer, up to this (a v2 header longer than this is refused).
inline constexpr std::size_t kMaxProxyHeader = 536;

ProxyHeader parse_proxy_header(const std::uint8_t* data, std::size_t n);

}  // namespace weir::net
