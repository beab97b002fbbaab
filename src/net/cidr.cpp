#include "net/cidr.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace weir::net {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<Ip> parse_ip(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  char buf[46];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  Ip ip{};
  in_addr v4{};
  if (inet_pton(AF_INET, buf, &v4) == 1) {
    ip[10] = ip[11] = 0xff;
    std::memcpy(ip.data() + 12, &v4, 4);
    return ip;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, buf, &v6) == 1) {
    std::memcpy(ip.data(), &v6, 16);
    return ip;
  }
  return std::nullopt;
}

bool Cidr::contains(const Ip& ip) const {
  const unsigned full = bits / 8, rest = bits % 8;
  if (!std::equal(addr.begin(), addr.begin() + full, ip.begin())) return false;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (ip[full] & mask) == addr[full];
}

std::optional<Cidr> parse_cidr(std::string_view text, std::string* why) {
  auto fail = [why](const char* w) -> std::optional<Cidr> {
    if (why) *why = w;
    return std::nullopt;
  };
  Cidr c;
  c.text = std::string(text);
  if (text == "all") return c;  // bits 0: everything
  const auto slash = text.find('/');
  const std::string_view host = text.substr(0, slash);
  const auto ip = parse_ip(host);
  if (!ip) return fail("not an IPv4 or IPv6 address");
  const bool v4 = host.find(':') == std::string_view::npos;
  unsigned bits = 128;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    unsigned n = 0;
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || n > (v4 ? 32u : 128u)) {
      return fail(v4 ? "the prefix length must be 0-32" : "the prefix length must be 0-128");
    }
    bits = v4 ? n + 96 : n;
  }
  c.addr = *ip;
  c.bits = bits;
  Ip masked = *ip;
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned from = i * 8;
    if (from >= bits) masked[i] = 0;
    else if (from + 8 > bits) masked[i] &= static_cast<std::uint8_t>(0xff << (8 - (bits - from)));
  }
  if (masked != *ip) return fail("host bits are set under the prefix (write the network address)");
  return c;
}

bool any_contains(const std::vector<Cidr>& set, const Ip& ip) {
  return std::any_of(set.begin(), set.end(), [&ip](const Cidr& c) { return c.contains(ip); });
}

std::string client_from_forwarded(std::string_view peer, const std::vector<Cidr>& trusted,
                                  const std::vector<std::string_view>& xff_fields) {
  std::string client(peer);
  const auto peer_ip = parse_ip(peer);
  if (!peer_ip || !any_contains(trusted, *peer_ip)) return client;
  // Hops right to left over every X-Forwarded-For field (later fields
  // come after earlier ones).
  for (auto f = xff_fields.rbegin(); f != xff_fields.rend(); ++f) {
    std::string_view list = *f;
    while (!list.empty()) {
      const auto comma = list.rfind(',');
      std::string_view hop = trim(comma == std::string_view::npos ? list : list.substr(comma + 1));
      list = comma == std::string_view::npos ? std::string_view() : list.substr(0, comma);
      // "[v6]" or "[v6]:port" and "v4:port" as some proxies write them.
      if (!hop.empty() && hop.front() == '[') {
        const auto close = hop.find(']');
        if (close == std::string_view::npos) return client;
        hop = hop.substr(1, close - 1);
      } else if (std::count(hop.begin(), hop.end(), ':') == 1) {
        hop = hop.substr(0, hop.find(':'));
      }
      const auto ip = parse_ip(hop);
      if (!ip) return client;  // garbage: believe nothing further left
      client = std::string(hop);
      if (!any_contains(trusted, *ip)) return client;
    }
  }
  return client;
}

}  // namespace weir::net
