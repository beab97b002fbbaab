#include "filters/authz/authz.h"

#include <algorithm>

#include "filters/claims.h"

namespace weir::filters {

namespace {

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

class AuthzInstance final : public Instance {
 public:
  explicit AuthzInstance(const AuthzFilter& f) : f_(f) {}
  HandshakeVerdict on_handshake(HandshakeContext& ctx) override {
    std::string why = f_.check(ctx.claims.get(), ctx.client_cert);
    if (why.empty()) return HandshakeVerdict::proceed();
    count(f_.denied());
    return HandshakeVerdict::refuse(
        403, why, {{"WWW-Authenticate", "Bearer realm=\"weir\", error=\"insufficient_scope\""}});
  }

 private:
  const AuthzFilter& f_;
};

}  // namespace

std::string AuthzFilter::check(const Claims* claims, std::string_view cert_subject) const {
  for (const auto& r : rules_) {
    std::vector<std::string> have;
    if (r.claim.empty()) {
      if (!cert_subject.empty()) have.emplace_back(cert_subject);
    } else if (claims != nullptr) {
      have = claims->strings(r.claim);
    }
    const auto held = [&have](const std::string& want) {
      return std::find(have.begin(), have.end(), want) != have.end();
    };
    const std::string where = r.claim.empty() ? "the client certificate subject" : "claim " + r.claim;
    if (!r.any_of.empty() && std::none_of(r.any_of.begin(), r.any_of.end(), held))
      return "forbidden: " + where + " has none of " + joined(r.any_of);
    for (const auto& want : r.all_of)
      if (!held(want)) return "forbidden: " + where + " lacks " + want;
  }
  return {};
}

std::shared_ptr<config::FilterSettings> AuthzFilter::parse(const config::FilterReader& v) {
  std::vector<Rule> rules;
  for (const auto& item : v.items(false)) {
    item.expect_keys({"claim", "cert", "any_of", "all_of"});
    Rule r;
    const auto claim = item.find("claim"), cert = item.find("cert");
    if (claim.has_value() == cert.has_value()) item.fail(item.label() + " needs exactly one of 'claim' and 'cert'");
    if (claim) {
      r.claim = claim->string("a claim path such as realm_access.roles or scope");
      if (r.claim.empty() || r.claim.front() == '.' || r.claim.back() == '.' ||
          r.claim.find("..") != std::string::npos)
        claim->fail(claim->label() + ": '" + r.claim + "' is not a claim path (names joined by dots)");
    } else {
      cert->choice({"subject"});
    }
    for (auto [key, out] : {std::pair{"any_of", &r.any_of}, std::pair{"all_of", &r.all_of}}) {
      if (auto list = item.find(key)) {
        for (const auto& s : list->items(true)) out->push_back(s.string());
        if (out->empty()) list->fail(list->label() + " must list at least one value");
      }
    }
    if (r.any_of.empty() && r.all_of.empty()) item.fail(item.label() + " needs 'any_of' or 'all_of'");
    rules.push_back(std::move(r));
  }
  if (rules.empty()) v.fail(v.label() + " needs at least one rule");
  return std::make_shared<AuthzFilter>(std::move(rules));
}

std::unique_ptr<Instance> AuthzFilter::instantiate() const { return std::make_unique<AuthzInstance>(*this); }

bool AuthzFilter::same_as(const config::FilterSettings& other) const {
  const auto* o = dynamic_cast<const AuthzFilter*>(&other);
  return o != nullptr && o->rules_ == rules_;
}

std::string_view AuthzFilter::needs() const {
  const bool claims = std::any_of(rules_.begin(), rules_.end(), [](const Rule& r) { return !r.claim.empty(); });
  return claims ? "jwt|introspection" : "";
}

void AuthzFilter::declare_metrics(obs::Registry& reg, const std::string& route) const {
  denied_ = reg.counter("weir_authz_denied_total", "Handshakes the authz filter refused (403)", {{"route", route}});
}

}  // namespace weir::filters
