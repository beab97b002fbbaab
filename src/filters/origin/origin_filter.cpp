#include "filters/origin/origin_filter.h"

#include <algorithm>
#include <cctype>

namespace weir::filters {

namespace {

// Stateless: one shared instance would do, but an Instance is per session by
// contract; this one is a pointer back to the settings.
class OriginInstance final : public Instance {
 public:
  explicit OriginInstance(const OriginFilter& f) : f_(f) {}
  HandshakeVerdict on_handshake(HandshakeContext& ctx) override {
    if (f_.allows(ctx.request.get("origin"))) return HandshakeVerdict::proceed();
    return HandshakeVerdict::refuse(403, "origin not allowed");
  }

 private:
  const OriginFilter& f_;
};

}  // namespace

bool valid_origin(std::string_view origin, bool wildcard_ok) {
  if (origin == "*" || origin == "null") return true;
  const auto sep = origin.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  for (char c : origin.substr(0, sep)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
    if (!ok) return false;
  }
  std::string_view authority = origin.substr(sep + 3);
  if (wildcard_ok && authority.substr(0, 2) == "*.") authority.remove_prefix(2);
  if (authority.empty() || authority.front() == '.' || authority.front() == ':') return false;
  return authority.find_first_of("/?#* \t") == std::string_view::npos;
}

bool origin_matches(std::string_view entry, std::string_view origin) {
  if (entry == "*") return true;
  const auto star = entry.find("://*.");
  if (star == std::string_view::npos) return http::iequals(entry, origin);
  // scheme://*.domain[:port]: the same scheme and port, a host with at least
  // one more label in front of .domain.
  const std::string_view scheme = entry.substr(0, star + 3);   // "https://"
  const std::string_view suffix = entry.substr(star + 4);      // ".example.com[:port]"
  if (origin.size() <= scheme.size() + suffix.size() || !http::iequals(origin.substr(0, scheme.size()), scheme))
    return false;
  const std::string_view host_and_port = origin.substr(scheme.size());
  const std::string_view tail = host_and_port.substr(host_and_port.size() - suffix.size());
  const std::string_view label = host_and_port.substr(0, host_and_port.size() - suffix.size());
  return http::iequals(tail, suffix) && label.find_first_of(":/") == std::string_view::npos;
}

std::shared_ptr<config::FilterSettings> OriginFilter::parse(const config::FilterReader& value) {
  std::vector<std::string> allowed;
  bool allow_missing = false;
  config::FilterReader list = value;
  if (value.is_map()) {
    value.expect_keys({"allow", "missing"});
    list = value.require("allow");
    if (auto m = value.find("missing")) allow_missing = m->choice({"allow", "deny"}) == "allow";
  }
  for (const auto& o : list.items(true)) {
    // Origins compare case-insensitively (RFC 6454 serialises them lower-case).
    std::string origin = o.string("a string such as https://chat.example.com");
    std::transform(origin.begin(), origin.end(), origin.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!valid_origin(origin, true)) {
      o.fail("invalid origin '" + origin +
             "' (use scheme://host[:port] with no path, e.g. https://chat.example.com, "
             "scheme://*.domain for its subdomains, or '*')");
    }
    allowed.push_back(std::move(origin));
  }
  return std::make_shared<OriginFilter>(std::move(allowed), allow_missing);
}

std::unique_ptr<Instance> OriginFilter::instantiate() const { return std::make_unique<OriginInstance>(*this); }

bool OriginFilter::same_as(const config::FilterSettings& other) const {
  const auto* o = dynamic_cast<const OriginFilter*>(&other);
  return o != nullptr && o->allowed_ == allowed_ && o->allow_missing_ == allow_missing_;
}

bool OriginFilter::allows(std::string_view origin) const {
  if (origin.empty() && allow_missing_) return true;
  for (const auto& o : allowed_)
    if (origin_matches(o, origin)) return true;
  return false;
}

}  // namespace weir::filters
