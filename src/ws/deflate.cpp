#include "ws/deflate.h"

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace weir::ws {

namespace {

constexpr std::string_view kName = "permessage-deflate";
// The tail a sender strips from every message (RFC 7692 7.2.1): an empty
// stored block that a sync flush ends with.
constexpr unsigned char kTail[4] = {0x00, 0x00, 0xff, 0xff};

std::atomic<std::int64_t> g_zlib_bytes{0};

// zlib's allocator, counted: every block carries its size in front.
voidpf counted_alloc(voidpf, uInt items, uInt size) {
  const std::size_t n = static_cast<std::size_t>(items) * size;
  auto* p = static_cast<unsigned char*>(std::malloc(n + 16));
  if (p == nullptr) return Z_NULL;
  std::memcpy(p, &n, sizeof n);
  g_zlib_bytes.fetch_add(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  return p + 16;
}

void counted_free(voidpf, voidpf q) {
  if (q == Z_NULL) return;
  auto* p = static_cast<unsigned char*>(q) - 16;
  std::size_t n = 0;
  std::memcpy(&n, p, sizeof n);
  g_zlib_bytes.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_relaxed);
  std::free(p);
}

bool is_space(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

struct Param {
  std::string name;    // lower-case
  bool has_value = false;
  std::string value;   // unquoted
};

struct Element {
  std::string name;
  std::vector<Param> params;
  bool valid = true;   // syntax of the element (a bad one is declined, or fails a response)
};

// Splits s at `sep` outside quoted strings.
std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  bool quoted = false;
  std::size_t from = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (quoted && s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      quoted = !quoted;
    } else if (!quoted && s[i] == sep) {
      out.push_back(s.substr(from, i - from));
      from = i + 1;
    }
  }
  out.push_back(s.substr(from));
  return out;
}

// Every extension element of the given header values, in order.
std::vector<Element> parse(const std::vector<std::string_view>& values) {
  std::vector<Element> out;
  for (std::string_view value : values) {
    for (std::string_view item : split(value, ',')) {
      item = trim(item);
      if (item.empty()) continue;  // RFC 9110 list syntax allows empty elements
      const auto parts = split(item, ';');
      Element e;
      e.name = std::string(trim(parts[0]));
      e.valid = is_token(e.name);
      for (std::size_t i = 1; i < parts.size(); ++i) {
        const std::string_view part = trim(parts[i]);
        const std::size_t eq = part.find('=');
        Param p;
        const std::string_view name = trim(part.substr(0, eq));
        if (!is_token(name)) e.valid = false;
        for (char c : name) p.name.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
        if (eq != std::string_view::npos) {
          p.has_value = true;
          std::string_view v = trim(part.substr(eq + 1));
          if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
            v = v.substr(1, v.size() - 2);
            for (std::size_t k = 0; k < v.size(); ++k) {
              if (v[k] == '\\' && k + 1 < v.size()) ++k;
              p.value.push_back(v[k]);
            }
            // RFC 6455 9.1: a quoted value must still be a token.
            if (!is_token(p.value)) e.valid = false;
          } else {
            if (!is_token(v)) e.valid = false;
            p.value = std::string(v);
          }
        }
        e.params.push_back(std::move(p));
      }
      out.push_back(std::move(e));
    }
  }
  return out;
}

// "8".."15", no leading zero (RFC 7692 7.1.2.1); 0 when invalid.
int window_bits(std::string_view v) {
  if (v.empty() || v.size() > 2 || v[0] == '0') return 0;
  int n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + (c - '0');
  }
  return n >= 8 && n <= 15 ? n : 0;
}

// The parameters of one permessage-deflate element, checked for syntax:
// known names, none repeated, values where required and valid.
struct Offered {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 0;  // 0: absent
  bool client_max_window_bits = false;
  int client_bits_value = 0;       // 0: no value
};

bool read_params(const Element& e, Offered& o, bool response) {
  if (!e.valid) return false;
  bool seen[4] = {false, false, false, false};
  for (const Param& p : e.params) {
    int which = -1;
    if (p.name == "server_no_context_takeover") which = 0;
    else if (p.name == "client_no_context_takeover") which = 1;
    else if (p.name == "server_max_window_bits") which = 2;
    else if (p.name == "client_max_window_bits") which = 3;
    if (which < 0 || seen[which]) return false;  // unknown or repeated (RFC 7692 7)
    seen[which] = true;
    switch (which) {
      case 0:
        if (p.has_value) return false;
        o.server_no_context_takeover = true;
        break;
      case 1:
        if (p.has_value) return false;
        o.client_no_context_takeover = true;
        break;
      case 2:
        if (!p.has_value || (o.server_max_window_bits = window_bits(p.value)) == 0) return false;
        break;
      case 3:
        o.client_max_window_bits = true;
        if (p.has_value) {
          if ((o.client_bits_value = window_bits(p.value)) == 0) return false;
        } else if (response) {
          return false;  // a response must give the value (RFC 7692 7.1.2.2)
        }
        break;
    }
  }
  return true;
}

}  // namespace

std::int64_t deflate_memory_in_use() { return g_zlib_bytes.load(std::memory_order_relaxed); }

DeflateDirections directions(const DeflateParams& p, bool weir_is_server) {
  DeflateDirections d;
  // zlib inflates any window up to its own: 9 reads what a zlib-based peer
  // makes when it was asked for 8 (zlib's deflate uses 9 then).
  if (weir_is_server) {
    d.inflate_window_bits = std::max(p.client_max_window_bits, 9);
    d.inflate_reset = p.client_no_context_takeover;
    d.deflate_window_bits = p.server_max_window_bits;
    d.deflate_reset = p.server_no_context_takeover;
  } else {
    d.inflate_window_bits = std::max(p.server_max_window_bits, 9);
    d.inflate_reset = p.server_no_context_takeover;
    d.deflate_window_bits = p.client_max_window_bits;
    d.deflate_reset = p.client_no_context_takeover;
  }
  return d;
}

std::optional<DeflateAccept> accept_offer(const std::vector<std::string_view>& offers, const DeflateSettings& s) {
  if (!s.enabled) return std::nullopt;
  for (const Element& e : parse(offers)) {
    if (!iequal(e.name, kName)) continue;
    Offered o;
    if (!read_params(e, o, /*response=*/false)) continue;  // declined: maybe a later offer fits
    DeflateAccept a;
    DeflateParams& p = a.params;
    p.server_no_context_takeover = o.server_no_context_takeover || !s.context_takeover;
    p.client_no_context_takeover = o.client_no_context_takeover || !s.context_takeover;
    p.server_max_window_bits = o.server_max_window_bits != 0 ? std::min(o.server_max_window_bits, s.window_bits)
                                                             : s.window_bits;
    // zlib's deflate cannot keep to an 8-bit window: such an offer is declined.
    if (p.server_max_window_bits < 9) continue;
    // Without client_max_window_bits in the offer the client may use 15 and
    // the response must not name it (RFC 7692 7.1.2.2).
    const int client_limit = o.client_bits_value != 0 ? o.client_bits_value : 15;
    p.client_max_window_bits = o.client_max_window_bits ? std::min(client_limit, s.peer_window_bits) : 15;
    a.response = std::string(kName);
    if (p.server_no_context_takeover) a.response += "; server_no_context_takeover";
    if (p.client_no_context_takeover) a.response += "; client_no_context_takeover";
    if (o.server_max_window_bits != 0 || p.server_max_window_bits < 15)
      a.response += "; server_max_window_bits=" + std::to_string(p.server_max_window_bits);
    if (o.client_max_window_bits)
      a.response += "; client_max_window_bits=" + std::to_string(p.client_max_window_bits);
    return a;
  }
  return std::nullopt;
}

std::string client_offer(const DeflateSettings& s) {
  std::string out(kName);
  if (!s.context_takeover) out += "; server_no_context_takeover; client_no_context_takeover";
  if (s.peer_window_bits < 15) out += "; server_max_window_bits=" + std::to_string(s.peer_window_bits);
  out += "; client_max_window_bits=" + std::to_string(s.window_bits);
  return out;
}

bool check_response(const std::vector<std::string_view>& values, const DeflateSettings& s,
                    std::optional<DeflateParams>& params, std::string& why) {
  params.reset();
  for (const Element& e : parse(values)) {
    if (!iequal(e.name, kName)) continue;  // another extension: not offered (checked elsewhere)
    if (params) {
      why = "upstream accepted permessage-deflate twice";
      return false;
    }
    Offered o;
    if (!read_params(e, o, /*response=*/true)) {
      why = "upstream sent invalid permessage-deflate parameters";
      return false;
    }
    if (!s.context_takeover && !o.server_no_context_takeover) {
      why = "upstream ignored server_no_context_takeover";
      return false;
    }
    if (s.peer_window_bits < 15 && (o.server_max_window_bits == 0 || o.server_max_window_bits > s.peer_window_bits)) {
      why = "upstream's server_max_window_bits exceeds Weir's offer";
      return false;
    }
    if (o.client_bits_value > s.window_bits) {
      why = "upstream's client_max_window_bits exceeds Weir's offer";
      return false;
    }
    if (o.client_bits_value == 8) {
      why = "upstream asked for client_max_window_bits=8, which zlib cannot keep to";
      return false;
    }
    DeflateParams p;
    p.server_no_context_takeover = o.server_no_context_takeover;
    p.client_no_context_takeover = o.client_no_context_takeover || !s.context_takeover;
    p.server_max_window_bits = o.server_max_window_bits != 0 ? o.server_max_window_bits : 15;
    p.client_max_window_bits = o.client_bits_value != 0 ? o.client_bits_value : s.window_bits;
    params = p;
  }
  return true;
}

// Inflater

struct Inflater::Impl {
  z_stream zs{};
  bool ready = false;
  ~Impl() {
    if (ready) inflateEnd(&zs);
  }
};

Inflater::Inflater(int window_bits, bool reset_each_message)
    : window_bits_(std::clamp(window_bits, 9, 15)), reset_(reset_each_message) {}
Inflater::~Inflater() = default;

Inflater::Status Inflater::inflate(std::string_view in, std::string& out, std::uint64_t max_out) {
  out.clear();
  if (!impl_) {
    auto impl = std::make_unique<Impl>();
    impl->zs.zalloc = counted_alloc;
    impl->zs.zfree = counted_free;
    if (inflateInit2(&impl->zs, -window_bits_) != Z_OK) return Status::no_memory;
    impl->ready = true;
    impl_ = std::move(impl);
  }
  z_stream& zs = impl_->zs;
  std::size_t produced = 0;
  // Room is added as output comes, up to max_out + 1 (one byte past the
  // bound proves it was crossed): a bomb stops there.
  const std::uint64_t cap = max_out + 1;
  std::size_t step = std::max<std::size_t>(4096, std::min<std::size_t>(in.size() * 4, 1u << 20));
  Status status = Status::ok;
  auto run = [&](const unsigned char* data, std::size_t n) -> bool {
    zs.next_in = const_cast<Bytef*>(data);
    zs.avail_in = static_cast<uInt>(n);
    for (;;) {
      if (produced == out.size()) {
        if (produced >= cap) {
          status = Status::too_big;
          return false;
        }
        out.resize(static_cast<std::size_t>(std::min<std::uint64_t>(produced + step, cap)));
        step = std::min<std::size_t>(step * 2, 16u << 20);
      }
      zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
      zs.avail_out = static_cast<uInt>(std::min<std::size_t>(out.size() - produced, 1u << 30));
      const int rc = ::inflate(&zs, Z_SYNC_FLUSH);
      produced = static_cast<std::size_t>(reinterpret_cast<char*>(zs.next_out) - out.data());
      if (produced > max_out) {
        status = Status::too_big;
        return false;
      }
      if (rc == Z_STREAM_END) {
        // A final block (allowed, RFC 7692 7.2.3.3): what follows starts a new stream.
        inflateReset(&zs);
        if (zs.avail_in == 0) return true;
        continue;
      }
      if (rc == Z_OK) {
        if (zs.avail_in == 0 && zs.avail_out != 0) return true;
        continue;
      }
      if (rc == Z_BUF_ERROR) {
        if (zs.avail_out == 0) continue;  // more room, then on
        return true;                      // input used up, nothing pending
      }
      status = rc == Z_MEM_ERROR ? Status::no_memory : Status::bad_data;
      return false;
    }
  };
  // A message may be larger than zlib's 32-bit avail_in: fed in slices.
  const auto* data = reinterpret_cast<const unsigned char*>(in.data());
  bool ok = true;
  for (std::size_t at = 0; ok && at < in.size();) {
    const std::size_t n = std::min<std::size_t>(in.size() - at, 1u << 30);
    ok = run(data + at, n);
    at += n;
  }
  if (ok) ok = run(kTail, sizeof kTail);
  if (!ok) {
    // The stream is in an unknown state: the session ends; free it now.
    out.clear();
    impl_.reset();
    return status;
  }
  out.resize(produced);
  if (reset_) inflateReset(&zs);
  return Status::ok;
}

// Deflater

struct Deflater::Impl {
  z_stream zs{};
  bool ready = false;
  ~Impl() {
    if (ready) deflateEnd(&zs);
  }
};

Deflater::Deflater(int window_bits, bool reset_each_message, int memory_level, int level)
    : window_bits_(std::clamp(window_bits, 9, 15)),
      memory_level_(std::clamp(memory_level, 1, 9)),
      level_(std::clamp(level, 1, 9)),
      reset_(reset_each_message) {}
Deflater::~Deflater() = default;

bool Deflater::deflate(std::string_view in, std::string& out) {
  if (!impl_) {
    auto impl = std::make_unique<Impl>();
    impl->zs.zalloc = counted_alloc;
    impl->zs.zfree = counted_free;
    if (deflateInit2(&impl->zs, level_, Z_DEFLATED, -window_bits_, memory_level_, Z_DEFAULT_STRATEGY) != Z_OK)
      return false;
    impl->ready = true;
    impl_ = std::move(impl);
  }
  z_stream& zs = impl_->zs;
  const std::size_t start = out.size();
  const auto* data = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t at = 0;
  for (;;) {
    const std::size_t n = std::min<std::size_t>(in.size() - at, 1u << 30);
    zs.next_in = const_cast<Bytef*>(data + at);
    zs.avail_in = static_cast<uInt>(n);
    at += n;
    const bool last = at == in.size();
    for (;;) {
      const std::size_t have = out.size();
      const std::size_t room = std::max<std::size_t>(deflateBound(&zs, zs.avail_in) / 2 + 64, 1024);
      out.resize(have + room);
      zs.next_out = reinterpret_cast<Bytef*>(out.data() + have);
      zs.avail_out = static_cast<uInt>(room);
      const int rc = ::deflate(&zs, last ? Z_SYNC_FLUSH : Z_NO_FLUSH);
      out.resize(have + room - zs.avail_out);
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        impl_.reset();
        out.resize(start);
        return false;
      }
      if (zs.avail_in == 0 && zs.avail_out != 0) break;
    }
    if (last) break;
  }
  // A sync flush ends with 00 00 ff ff, which the receiver puts back.
  if (out.size() - start >= 4 && std::memcmp(out.data() + out.size() - 4, kTail, 4) == 0) out.resize(out.size() - 4);
  // Nothing came out (an empty message right after a flush: zlib has
  // nothing to flush): the tail alone would be read as the length of a
  // stored block whose header never came. One 0x00 byte is that header: an
  // empty stored block, as RFC 7692 7.2.3.6 sends an empty message.
  if (out.size() == start) out.push_back('\0');
  if (reset_) deflateReset(&zs);
  return true;
}

}  // namespace weir::ws
