// Value parsers shared by the config loader and the command line, and the
// loader's small validators (config/detail.h). They are strict on purpose: a value that is almost
// right ("10 sec", "8kb", "::1:80") is refused rather than guessed, so a typo cannot silently
// become a limit.

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "config/detail.h"

namespace weir::config {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Reads a run of decimal digits at `s[i]`; nullopt when there is none or it
// does not fit in 64 bits.
std::optional<std::uint64_t> read_digits(std::string_view s, std::size_t& i) {
  const std::size_t start = i;
  std::uint64_t value = 0;
  for (; i < s.size() && is_digit(s[i]); ++i) {
    const auto digit = static_cast<std::uint64_t>(s[i] - '0');
    if (value > (std::numeric_limits<std::uint64_t>::max() - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  if (i == start) return std::nullopt;
  return value;
}

void skip_spaces(std::string_view s, std::size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
}

bool valid_host_name(std::string_view host) {
  // RFC 1123 names and IPv4 literals; '_' is tolerated because internal DNS
  // names (Docker, Consul) use it.
  if (host.empty() || host.size() > 253 || host.front() == '.' || host.back() == '.') return false;
  char prev = 0;
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
                    c == '_' || c == '.';
    if (!ok || (c == '.' && prev == '.')) return false;
    prev = c;
  }
  return true;
}

std::optional<std::uint16_t> parse_port(std::string_view s) {
  std::size_t i = 0;
  const auto value = read_digits(s, i);
  if (!value || i != s.size() || *value == 0 || *value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(*value);
}

}  // namespace

std::optional<Millis> parse_duration(const std::string& text) {
  const std::string_view s = text;
  std::size_t i = 0;
  const auto whole = read_digits(s, i);
  if (!whole) return std::nullopt;

  // Fraction digits are kept as an integer numerator over 10^digits so that
  // "1.5s" is exact; trailing zeros are dropped so "1.500000000000s" works.
  std::string_view fraction;
  if (i < s.size() && s[i] == '.') {
    const std::size_t start = ++i;
    while (i < s.size() && is_digit(s[i])) ++i;
    fraction = s.substr(start, i - start);
    if (fraction.empty()) return std::nullopt;
    while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
    if (fraction.size() > 9) return std::nullopt;  // finer than a nanosecond: surely a mistake
  }
  const bool spaced = i < s.size() && (s[i] == ' ' || s[i] == '\t');
  skip_spaces(s, i);

  const std::string_view unit = s.substr(i);
  std::int64_t unit_ms = 0;
  if (unit.empty() || unit == "s") {
    unit_ms = 1000;  // a bare number means seconds, the unit every timeout is thought of in
  } else if (unit == "ms") {
    unit_ms = 1;
  } else if (unit == "m") {
    unit_ms = 60'000;
  } else if (unit == "h") {
    unit_ms = 3'600'000;
  } else {
    return std::nullopt;
  }
  if (unit.empty() && spaced) return std::nullopt;  // "10 ": a unit was forgotten or cut off

  std::int64_t ms = 0;
  if (*whole > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) ||
      __builtin_mul_overflow(static_cast<std::int64_t>(*whole), unit_ms, &ms)) {
    return std::nullopt;
  }
  if (!fraction.empty()) {
    std::int64_t numerator = 0;
    std::int64_t denominator = 1;
    for (char c : fraction) {
      numerator = numerator * 10 + (c - '0');
      denominator *= 10;
    }
    // The resolution is one millisecond; "0.5ms" cannot be honoured.
    if ((numerator * unit_ms) % denominator != 0) return std::nullopt;
    if (__builtin_add_overflow(ms, numerator * unit_ms / denominator, &ms)) return std::nullopt;
  }
  return Millis{ms};
}

std::optional<std::uint64_t> parse_size(const std::string& text) {
  const std::string_view s = text;
  std::size_t i = 0;
  const auto count = read_digits(s, i);
  if (!count) return std::nullopt;
  const bool spaced = i < s.size() && (s[i] == ' ' || s[i] == '\t');
  skip_spaces(s, i);

  struct Unit {
    std::string_view name;
    std::uint64_t bytes;
  };
  // Every multiple is binary: nobody sizing a buffer means 1000.
  static constexpr std::array<Unit, 12> units{{{"", 1},
                                               {"B", 1},
                                               {"k", 1ull << 10},
                                               {"K", 1ull << 10},
                                               {"KB", 1ull << 10},
                                               {"KiB", 1ull << 10},
                                               {"M", 1ull << 20},
                                               {"MB", 1ull << 20},
                                               {"MiB", 1ull << 20},
                                               {"G", 1ull << 30},
                                               {"GB", 1ull << 30},
                                               {"GiB", 1ull << 30}}};
  const std::string_view unit = s.substr(i);
  if (unit.empty() && spaced) return std::nullopt;
  for (const auto& u : units) {
    if (u.name != unit) continue;
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(*count, u.bytes, &bytes)) return std::nullopt;
    return bytes;
  }
  return std::nullopt;
}

std::optional<Upstream> parse_upstream(const std::string& text) {
  std::string_view s = text;
  Upstream up;
  up.text = text;
  if (s.substr(0, 6) == "wss://") {
    up.tls = true;
    s.remove_prefix(6);
  } else if (s.substr(0, 5) == "ws://") {
    s.remove_prefix(5);
  }
  const bool scheme = s.size() != text.size();
  if (scheme && !s.empty() && s.back() == '/') s.remove_suffix(1);  // "wss://host:443/"
  // With a scheme the port may be left out: 80 for ws, 443 for wss.
  std::string with_port;
  if (scheme && !s.empty() && s.back() != ']' && s.find(':') == std::string_view::npos) {
    with_port = std::string(s) + (up.tls ? ":443" : ":80");
    s = with_port;
  } else if (scheme && !s.empty() && s.back() == ']') {
    with_port = std::string(s) + (up.tls ? ":443" : ":80");
    s = with_port;
  }
  if (s == "echo" && s.size() == text.size()) {
    up.kind = Upstream::Kind::echo;
    return up;
  }

  std::string_view host;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    // "[v6]:port": the brackets are only syntax; the host is kept bare for the resolver.
    const auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return std::nullopt;
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
    in6_addr addr{};
    if (inet_pton(AF_INET6, std::string(host).c_str(), &addr) != 1) return std::nullopt;
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    // An unbracketed IPv6 literal is ambiguous ("::1:80"), so it is refused.
    if (!valid_host_name(host)) return std::nullopt;
  }
  const auto port_number = parse_port(port);
  if (!port_number) return std::nullopt;
  up.kind = Upstream::Kind::tcp;
  up.host = std::string(host);
  up.port = *port_number;
  return up;
}

namespace detail {

std::optional<std::string> normalize_ip(const std::string& text) {
  char buf[INET6_ADDRSTRLEN] = {};
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return inet_ntop(AF_INET, &v4, buf, sizeof buf);
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) return inet_ntop(AF_INET6, &v6, buf, sizeof buf);
  return std::nullopt;
}

bool valid_route_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

bool valid_match_host(std::string_view host) {
  if (host.substr(0, 2) == "*.") host.remove_prefix(2);
  if (host.empty() || host.size() > 253) return false;
  std::size_t label = 0;
  for (char c : host) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return label > 0;
}

bool valid_header_name(std::string_view name) {
  // RFC 9110 token characters.
  static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           extra.find(c) != std::string_view::npos;
  });
}

// A swapped pair of letters ("idel") counts as one edit: the commonest typo
// in a key.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

}  // namespace detail

}  // namespace weir::config
