#pragma once
// authz: role- and scope-based access (RBAC) on what the handshake proved:
// the claims of the token the jwt filter verified, or the subject of the
// TLS client certificate (mTLS). Every rule must hold; a request that fails
// one gets 403 (WWW-Authenticate: Bearer error="insufficient_scope", RFC
// 6750 3.1, for claim rules).
//
// YAML (on a route):
//   authz:
//     - claim: realm_access.roles   # dotted path into the claims
//       any_of: [admin, support]    # at least one of these
//     - claim: scope                # a space-separated string works too
//       all_of: [chat:read, chat:write]
//     - cert: subject               # the verified client certificate's subject (RFC 2253)
//       any_of: ["CN=ops,O=Example"]
// A rule has exactly one of claim / cert, and any_of and/or all_of.
// A route with a claim rule needs `jwt` (the loader says so).

#include <memory>
#include <string>
#include <vector>

#include "config/filter_reader.h"
#include "filters/api.h"

namespace weir::filters {

class Claims;

class AuthzFilter final : public Filter {
 public:
  struct Rule {
    std::string claim;   // path into the claims; empty: the certificate subject
    std::vector<std::string> any_of, all_of;
    bool operator==(const Rule&) const = default;
  };
  explicit AuthzFilter(std::vector<Rule> rules) : rules_(std::move(rules)) {}
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  unsigned hooks() const override { return kHandshake; }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  std::string_view needs() const override;
  void declare_metrics(obs::Registry& reg, const std::string& route) const override;

  // "" when every rule holds, else why not (for the 403 and the log).
  std::string check(const Claims* claims, std::string_view cert_subject) const;
  obs::CounterId denied() const { return denied_; }

 private:
  std::vector<Rule> rules_;
  mutable obs::CounterId denied_;
};

}  // namespace weir::filters
