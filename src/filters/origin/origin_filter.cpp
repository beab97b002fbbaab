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

bool valid_origin(std::string_view origin) {
  if (origin == "*" || origin == "null") return true;
  const auto sep = origin.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  for (char c : origin.substr(0, sep)) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
    if (!ok) return false;
  }
  const std::string_view authority = origin.substr(sep + 3);
  if (authority.empty()) return false;
  return authority.find_first_of("/?# \t") == std::string_view::npos;
}

std::shared_ptr<config::FilterSettings> OriginFilter::parse(const config::FilterReader& value) {
  std::vector<std::string> allowed;
  for (const auto& o : value.items(true)) {
    // Origins compare case-insensitively (RFC 6454 serialises them lower-case).
    std::string origin = o.string("a string such as https://chat.example.com");
    std::transform(origin.begin(), origin.end(), origin.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!valid_origin(origin)) {
      o.fail("invalid origin '" + origin +
             "' (use scheme://host[:port] with no path, e.g. https://chat.example.com, or '*')");
    }
    allowed.push_back(std::move(origin));
  }
  return std::make_shared<OriginFilter>(std::move(allowed));
}

std::unique_ptr<Instance> OriginFilter::instantiate() const { return std::make_unique<OriginInstance>(*this); }

bool OriginFilter::same_as(const config::FilterSettings& other) const {
  const auto* o = dynamic_cast<const OriginFilter*>(&other);
  return o != nullptr && o->allowed_ == allowed_;
}

bool OriginFilter::allows(std::string_view origin) const {
  for (const auto& o : allowed_)
    if (o == "*" || http::iequals(o, origin)) return true;
  return false;
}

}  // namespace weir::filters
