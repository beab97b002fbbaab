#pragma once
// IP addresses and CIDR blocks for address policies (ip_policy,
// trusted_proxies). Every address is kept as 16 bytes: an IPv4 address as
// its IPv4-mapped IPv6 form (::ffff:a.b.c.d), so 10.0.0.0/8 also matches a
// dual-stack socket's ::ffff:10.1.2.3.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace weir::net {

using Ip = std::array<std::uint8_t, 16>;

// An IPv4 or IPv6 literal (no brackets, no port, no zone); nullopt if not one.
std::optional<Ip> parse_ip(std::string_view text);

struct Cidr {
  Ip addr{};          // masked to its prefix
  unsigned bits = 0;  // prefix length on the 128-bit form
  bool contains(const Ip& ip) const;
  std::string text;   // as written
};

// "10.0.0.0/8", "2001:db8::/32", a bare address (a /32 or /128), or "all"
// (every address); nullopt when invalid (bad address, prefix too long).
// Host bits set under the prefix are refused (10.0.0.1/8 is a typo more
// often than not): why says so.
std::optional<Cidr> parse_cidr(std::string_view text, std::string* why = nullptr);

bool any_contains(const std::vector<Cidr>& set, const Ip& ip);

// The client a request comes from: the socket peer, unless the peer is a
// trusted proxy; then the X-Forwarded-For chain is walked from its right end
// past the trusted hops, and the first untrusted one is the client (a hop a
// client wrote itself is left of it and never believed). A malformed hop
// stops the walk at the last good address.
std::string client_from_forwarded(std::string_view peer, const std::vector<Cidr>& trusted,
                                  const std::vector<std::string_view>& xff_fields);

}  // namespace weir::net
