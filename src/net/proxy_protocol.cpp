#include "net/proxy_protocol.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <string_view>

#include "net/cidr.h"

namespace weir::net {

namespace {

constexpr std::uint8_t kV2Sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::size_t kV1Max = 107;

ProxyHeader invalid(const char* why) {
  ProxyHeader h;
  h.status = ProxyHeader::Status::invalid;
  h.error = why;
  return h;
}

bool parse_port(std::string_view s, std::uint16_t& out) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  unsigned v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

// "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n" / "PROXY UNKNOWN ...\r\n"
ProxyHeader parse_v1(const std::uint8_t* data, std::size_t n) {
  const std::string_view in(reinterpret_cast<const char*>(data), std::min(n, kV1Max));
  const auto crlf = in.find("\r\n");
  if (crlf == std::string_view::npos) {
    if (n >= kV1Max) return invalid("PROXY v1 line longer than 107 bytes");
    if (in.find('\n') != std::string_view::npos) return invalid("PROXY v1 line without CRLF");
    ProxyHeader h;
    return h;  // need more
  }
  std::string_view line = in.substr(0, crlf);
  std::string_view f[6];
  std::size_t count = 0;
  while (!line.empty() && count < 6) {
    const auto sp = line.find(' ');
    f[count++] = line.substr(0, sp);
    line = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  }
  if (count < 2 || f[0] != "PROXY") return invalid("not a PROXY v1 line");
  ProxyHeader h;
  h.size = crlf + 2;
  if (f[1] == "UNKNOWN") {
    h.status = ProxyHeader::Status::done;
    h.local = true;
    return h;
  }
  if ((f[1] != "TCP4" && f[1] != "TCP6") || count != 6 || !line.empty()) return invalid("malformed PROXY v1 line");
  const bool v6 = f[1] == "TCP6";
  for (int i = 2; i <= 3; ++i) {
    const bool has_colon = f[i].find(':') != std::string_view::npos;
    if (has_colon != v6 || !parse_ip(f[i])) return invalid("bad address in PROXY v1 line");
  }
  std::uint16_t dport = 0;
  if (!parse_port(f[4], h.source_port) || !parse_port(f[5], dport)) return invalid("bad port in PROXY v1 line");
  h.status = ProxyHeader::Status::done;
  h.source = std::string(f[2]);
  return h;
}

ProxyHeader parse_v2(const std::uint8_t* data, std::size_t n) {
  if (n < 16) return {};
  const std::uint8_t ver_cmd = data[12], fam = data[13];
  const std::size_t len = static_cast<std::size_t>(data[14]) << 8 | data[15];
  if ((ver_cmd >> 4) != 2) return invalid("PROXY v2 header with another version");
  const unsigned cmd = ver_cmd & 0x0F;
  if (cmd > 1) return invalid("PROXY v2 header with an unknown command");
  if (16 + len > kMaxProxyHeader) return invalid("PROXY v2 header too long");
  if (n < 16 + len) return {};
  ProxyHeader h;
  h.size = 16 + len;
  h.status = ProxyHeader::Status::done;
  if (cmd == 0) {  // LOCAL: the proxy's own connection (health check): keep the peer
    h.local = true;
    return h;
  }
  const std::uint8_t* a = data + 16;
  switch (fam) {
    case 0x11:  // TCP over IPv4
    case 0x12: {  // UDP over IPv4
      if (len < 12) return invalid("PROXY v2 IPv4 addresses truncated");
      char buf[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, a, buf, sizeof buf);
      h.source = buf;
      h.source_port = static_cast<std::uint16_t>(a[8] << 8 | a[9]);
      return h;
    }
    case 0x21:
    case 0x22: {
      if (len < 36) return invalid("PROXY v2 IPv6 addresses truncated");
      char buf[INET6_ADDRSTRLEN];
      inet_ntop(AF_INET6, a, buf, sizeof buf);
      h.source = buf;
      h.source_port = static_cast<std::uint16_t>(a[32] << 8 | a[33]);
      return h;
    }
    default:  // AF_UNSPEC or a UNIX socket: no address we can use
      h.local = true;
      return h;
  }
}

}  // namespace

ProxyHeader parse_proxy_header(const std::uint8_t* data, std::size_t n) {
  // Decide the version as soon as the first bytes can tell.
  const std::size_t sig = std::min<std::size_t>(n, 12);
  if (std::memcmp(data, kV2Sig, sig) == 0) {
    if (n < 12) return {};
    return parse_v2(data, n);
  }
  static constexpr char kV1[] = "PROXY ";
  const std::size_t v1 = std::min<std::size_t>(n, 6);
  if (std::memcmp(data, kV1, v1) == 0) {
    if (n < 6) return {};
    return parse_v1(data, n);
  }
  return invalid("no PROXY protocol header from a proxy that must send one");
}

}  // namespace weir::net
