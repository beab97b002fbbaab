#include "filters/ip_policy/ip_policy.h"

#include <algorithm>

namespace weir::filters {

namespace {

class IpPolicyInstance final : public Instance {
 public:
  explicit IpPolicyInstance(const IpPolicyFilter& f) : f_(f) {}
  HandshakeVerdict on_handshake(HandshakeContext& ctx) override {
    if (f_.allows(ctx.client_ip)) return HandshakeVerdict::proceed();
    return HandshakeVerdict::refuse(403, "client address not allowed");
  }

 private:
  const IpPolicyFilter& f_;
};

std::vector<net::Cidr> blocks(const config::FilterReader& v) {
  std::vector<net::Cidr> out;
  for (const auto& item : v.items(/*scalar_ok=*/true)) {
    const std::string text = item.string("a CIDR block such as 10.0.0.0/8 or 2001:db8::/32, an address, or all");
    std::string why;
    auto c = net::parse_cidr(text, &why);
    if (!c) item.fail(item.label() + ": " + why + ", got '" + text + "'");
    out.push_back(std::move(*c));
  }
  return out;
}

}  // namespace

IpPolicyFilter::IpPolicyFilter(std::vector<Rule> rules)
    : rules_(std::move(rules)),
      default_allow_(std::none_of(rules_.begin(), rules_.end(), [](const Rule& r) { return r.allow; })) {}

bool IpPolicyFilter::allows(std::string_view ip) const {
  const auto addr = net::parse_ip(ip);
  if (!addr) return false;
  for (const auto& r : rules_)
    if (r.block.contains(*addr)) return r.allow;
  return default_allow_;
}

std::shared_ptr<config::FilterSettings> IpPolicyFilter::parse(const config::FilterReader& v) {
  std::vector<Rule> rules;
  auto add = [&rules](bool allow, const config::FilterReader& list) {
    for (auto& c : blocks(list)) rules.push_back({allow, std::move(c)});
  };
  if (v.is_map()) {
    v.expect_keys({"allow", "deny"});
    if (auto d = v.find("deny")) add(false, *d);
    if (auto a = v.find("allow")) add(true, *a);
  } else {
    for (const auto& item : v.items(/*scalar_ok=*/false)) {
      if (!item.is_map()) item.fail(item.label() + " must be {allow: ...} or {deny: ...}");
      item.expect_keys({"allow", "deny"});
      const auto a = item.find("allow"), d = item.find("deny");
      if (a.has_value() == d.has_value()) item.fail(item.label() + " must have exactly one of 'allow' and 'deny'");
      add(a.has_value(), a ? *a : *d);
    }
  }
  if (rules.empty()) v.fail(v.label() + " needs at least one allow or deny rule");
  return std::make_shared<IpPolicyFilter>(std::move(rules));
}

std::unique_ptr<Instance> IpPolicyFilter::instantiate() const { return std::make_unique<IpPolicyInstance>(*this); }

bool IpPolicyFilter::same_as(const config::FilterSettings& other) const {
  const auto* o = dynamic_cast<const IpPolicyFilter*>(&other);
  if (o == nullptr || o->rules_.size() != rules_.size()) return false;
  for (std::size_t i = 0; i < rules_.size(); ++i)
    if (o->rules_[i].allow != rules_[i].allow || o->rules_[i].block.text != rules_[i].block.text) return false;
  return true;
}

}  // namespace weir::filters
