#pragma once
// Who a verified TLS client certificate names (mTLS): its subject, the
// subject's common name and its subjectAltName entries by kind. Made once
// per TLS handshake (net::peer_identity), read by the authz filter. No
// OpenSSL here: filters/api.h includes it.

#include <string>
#include <vector>

namespace weir::net {

struct CertIdentity {
  std::string subject;             // RFC 2253, e.g. "CN=ops,O=Example"; "" = no verified certificate
  std::string cn;                  // the subject's (last) commonName, "" when none
  std::vector<std::string> dns;    // SAN dNSName
  std::vector<std::string> uri;    // SAN uniformResourceIdentifier (e.g. spiffe://...)
  std::vector<std::string> email;  // SAN rfc822Name
  bool present() const { return !subject.empty(); }
};

}  // namespace weir::net
