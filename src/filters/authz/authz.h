#pragma once
// authz: role- and scope-based access (RBAC) on what the handshake proved:
// the claims of the token the jwt or introspection filter verified, or the
// TLS client certificate (mTLS): its subject, or its subject CN and SANs.
// Every rule must hold; a request that fails one gets 403
// (WWW-Authenticate: Bearer error="insufficient_scope", RFC 6750 3.1).
//
// YAML (on a route):
//   authz:
//     - claim: realm_access.roles   # dotted path into the claims
//       any_of: [admin, support]    # at least one of these
//     - claim: scope                # a space-separated string works too
//       all_of: [chat:read, chat:write]
//     - cert: subject               # the verified client certificate's subject (RFC 2253)
//       any_of: ["CN=ops,O=Example"]
//     - client_cert:                # its subject CN, or one of its SANs, must match
//         subject_cn_any_of: [ops, "*.ops.example"]
//         san_any_of: ["*.svc.example", "spiffe://example/ns/chat", "ops@example.com"]
// A claim or cert rule has any_of and/or all_of; a client_cert rule at least
// one of its two lists. `*.domain` (CN and DNS SANs only, case-insensitive)
// stands for exactly one more label, as in TLS name checks (RFC 6125 6.4.3);
// URI and email SANs match exactly. Without a verified client certificate a
// cert or client_cert rule fails (403).
// A route with a claim rule needs `jwt` or `introspection` (the loader says so).

#include <memory>
#include <string>
#include <vector>

#include "config/filter_reader.h"
#include "filters/api.h"
#include "net/cert_identity.h"

namespace weir::filters {

class Claims;

class AuthzFilter final : public Filter {
 public:
  struct Rule {
    std::string claim;   // path into the claims; empty: a certificate rule
    std::vector<std::string> any_of, all_of;      // claim, or cert: subject
    bool cert_names = false;                      // a client_cert rule: the two lists below
    std::vector<std::string> cn_any_of, san_any_of;
    bool operator==(const Rule&) const = default;
  };
  explicit AuthzFilter(std::vector<Rule> rules) : rules_(std::move(rules)) {}
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  unsigned hooks() const override { return kHandshake; }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  std::string_view needs() const override;
  void declare_metrics(obs::Registry& reg, const std::string& route) const override;

  // "" when every rule holds, else why not (for the 403 and the log). cert:
  // the verified client certificate, null or !present() without one.
  std::string check(const Claims* claims, const net::CertIdentity* cert) const;
  obs::CounterId denied() const { return denied_; }

 private:
  std::vector<Rule> rules_;
  mutable obs::CounterId denied_;
};

}  // namespace weir::filters
