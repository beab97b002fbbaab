#pragma once
// ip_policy: allow or deny by client address (IPv4 and IPv6 CIDR blocks),
// before anything else of the handshake (403). The client address is the
// socket peer, or, when the peer is one of `trusted_proxies` (top level),
// the last untrusted hop of X-Forwarded-For (net/cidr.h): a client cannot
// talk its way past the policy with a header of its own.
//
// Rules are checked in order and the first that matches decides. When none
// matches: denied if the policy has any allow rule, allowed otherwise.
//
// YAML (on a route):
//   ip_policy: [{deny: 10.1.2.3}, {allow: [10.0.0.0/8, "2001:db8::/32"]}]
//   ip_policy: {deny: [192.0.2.0/24], allow: [0.0.0.0/0]}   # deny rules first

#include <memory>
#include <vector>

#include "config/filter_reader.h"
#include "filters/api.h"
#include "net/cidr.h"

namespace weir::filters {

class IpPolicyFilter final : public Filter {
 public:
  struct Rule {
    bool allow = false;
    net::Cidr block;
  };
  explicit IpPolicyFilter(std::vector<Rule> rules);
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  unsigned hooks() const override { return kHandshake; }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  // The verdict for a client address (text); an unparsable one is denied.
  bool allows(std::string_view ip) const;

 private:
  std::vector<Rule> rules_;
  bool default_allow_;
};

}  // namespace weir::filters
