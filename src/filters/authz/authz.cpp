#include "filters/authz/authz.h"

#include <algorithm>
#include <cctype>

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
    std::string why = f_.check(ctx.claims.get(), ctx.client_cert_names);
    if (why.empty()) return HandshakeVerdict::proceed();
    count(f_.denied());
    return HandshakeVerdict::refuse(
        403, why, {{"WWW-Authenticate", "Bearer realm=\"weir\", error=\"insufficient_scope\""}});
  }

 private:
  const AuthzFilter& f_;
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// A CN or DNS SAN against a pattern: exact (case-insensitive), or
// "*.domain": exactly one non-empty label in front of ".domain".
bool dns_matches(std::string_view pattern, std::string_view name) {
  if (pattern.substr(0, 2) != "*.") return iequals(pattern, name);
  const std::string_view suffix = pattern.substr(1);  // ".domain"
  if (name.size() <= suffix.size() || !iequals(name.substr(name.size() - suffix.size()), suffix)) return false;
  return name.substr(0, name.size() - suffix.size()).find('.') == std::string_view::npos;
}

// A pattern is a name, or "*." and a name: no other '*'.
bool valid_pattern(std::string_view p) {
  if (p.substr(0, 2) == "*.") p.remove_prefix(2);
  return !p.empty() && p.find('*') == std::string_view::npos && p.front() != '.';
}

std::string cert_names_check(const AuthzFilter::Rule& r, const net::CertIdentity* cert) {
  if (cert == nullptr || !cert->present()) return "forbidden: client certificate required";
  for (const auto& p : r.cn_any_of)
    if (!cert->cn.empty() && dns_matches(p, cert->cn)) return {};
  for (const auto& p : r.san_any_of) {
    for (const auto& d : cert->dns)
      if (dns_matches(p, d)) return {};
    for (const auto* list : {&cert->uri, &cert->email})
      if (std::find(list->begin(), list->end(), p) != list->end()) return {};
  }
  std::string want;
  if (!r.cn_any_of.empty()) want = "subject CN one of " + joined(r.cn_any_of);
  if (!r.san_any_of.empty()) want += (want.empty() ? "" : " or ") + std::string("SAN one of ") + joined(r.san_any_of);
  return "forbidden: the client certificate has no " + want;
}

}  // namespace

std::string AuthzFilter::check(const Claims* claims, const net::CertIdentity* cert) const {
  for (const auto& r : rules_) {
    if (r.cert_names) {
      if (std::string why = cert_names_check(r, cert); !why.empty()) return why;
      continue;
    }
    std::vector<std::string> have;
    if (r.claim.empty()) {
      if (cert != nullptr && cert->present()) have.emplace_back(cert->subject);
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
    item.expect_keys({"claim", "cert", "client_cert", "any_of", "all_of"});
    Rule r;
    const auto claim = item.find("claim"), cert = item.find("cert"), names = item.find("client_cert");
    if (claim.has_value() + cert.has_value() + names.has_value() != 1)
      item.fail(item.label() + " needs exactly one of 'claim', 'cert' and 'client_cert'");
    if (names) {
      for (const char* k : {"any_of", "all_of"})
        if (auto o = item.find(k)) o->fail(o->label() + " does not go with 'client_cert' (use its subject_cn_any_of, san_any_of)");
      names->expect_keys({"subject_cn_any_of", "san_any_of"});
      r.cert_names = true;
      for (auto [key, out] : {std::pair{"subject_cn_any_of", &r.cn_any_of}, std::pair{"san_any_of", &r.san_any_of}}) {
        auto list = names->find(key);
        if (!list) continue;
        for (const auto& s : list->items(true)) {
          std::string p = s.string();
          if (!valid_pattern(p)) s.fail(s.label() + ": '" + p + "' is not a name or a *.domain wildcard");
          out->push_back(std::move(p));
        }
        if (out->empty()) list->fail(list->label() + " must list at least one value");
      }
      if (r.cn_any_of.empty() && r.san_any_of.empty())
        names->fail(names->label() + " needs 'subject_cn_any_of' or 'san_any_of'");
      rules.push_back(std::move(r));
      continue;
    }
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
