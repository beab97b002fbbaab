#pragma once
// introspection: the handshake needs an opaque bearer token that an OAuth 2
// token introspection endpoint (RFC 7662) says is active. The token is
// found where the jwt filter finds its own (filters/bearer_token.h), POSTed
// as a form (`token=...`, optional `token_type_hint`) with the client's
// credentials (HTTP Basic) on the fetch thread, and the handshake waits
// (pending) for the answer, or takes it from the shared cache.
//
// An active token's answer becomes what the jwt filter would have handed
// on: `sub` the session's user, `jti` its token id (revocation), the whole
// response the claims (authz reads `scope`, roles, ... from it), and `exp`
// the session's deadline (Close 1008 "token expired").
//
// Refusals: no token, an inactive, expired or revoked one: 401 with the
// Bearer challenge. The endpoint down, slow past `timeout`, not 200, or
// answering something that is not an introspection response: 503 with
// Retry-After (the token may well be good).
//
// YAML (on a route):
//   introspection:
//     url: https://idp.example/oauth2/introspect   # or http:// (e.g. a sidecar)
//     ca: /etc/weir/idp-ca.pem         # https: CA bundle (path or PEM); default the system's
//     client_id: weir
//     client_secret: ${INTROSPECTION_SECRET}
//     token_type_hint: access_token    # optional
//     timeout: 3s                      # one request, end to end (100ms..60s)
//     max_response_bytes: 64KiB
//     retry_after: 5s                  # Retry-After of the 503
//     cache: {max_entries: 10000, ttl: 60s, inactive_ttl: 10s}
//     from: [header, subprotocol, query, cookie]   # as jwt
//     subprotocol_prefix: bearer.
//     query_param: access_token
//     cookie: access_token
//     claims_to_headers: [{claim: sub, header: X-User-Id}]
//     strip_token: true
//     expiry: close                    # close | ignore
//     max_token_bytes: 8KiB

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "config/filter_reader.h"
#include "filters/api.h"
#include "filters/bearer_token.h"
#include "filters/introspection/introspector.h"

namespace weir::filters {

class IntrospectionFilter final : public Filter {
 public:
  struct Settings {
    std::shared_ptr<Introspector> endpoint;
    BearerSources bearer;
    std::vector<std::pair<std::string, std::string>> claims_to_headers;  // claim -> header
    bool strip = true;
    bool close_on_expiry = true;
    std::size_t max_token_bytes = 8192;
    std::int64_t retry_after_s = 5;
  };
  explicit IntrospectionFilter(Settings s) : s_(std::move(s)) {}
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  unsigned hooks() const override { return kHandshake; }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  void declare_metrics(obs::Registry& reg, const std::string& route) const override;
  const Settings& settings() const { return s_; }
  const Introspector::Counters& counters() const { return counters_; }
  obs::CounterId cached() const { return cached_; }

  // The verdict for an answer at now_ms (wall clock): on success ctx gets
  // the identity, claims, deadline, headers and the stripped request.
  HandshakeVerdict decide(HandshakeContext& ctx, const Introspector::Outcome& o, FoundToken& found,
                          std::int64_t now_ms) const;

 private:
  Settings s_;
  mutable Introspector::Counters counters_;
  mutable obs::CounterId cached_;
};

}  // namespace weir::filters
