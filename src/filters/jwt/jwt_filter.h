#pragma once
// jwt: the handshake needs a valid JSON Web Token (RFC 7519), verified with
// configured keys (jose.h: HMAC secrets, PEM public keys, and JWKS URLs,
// jwks_source.h), and the session ends with Close 1008 "token expired" when
// it expires.
//
// With a JWKS URL the handshake may wait (pending) for a fetch: the first
// one, or a refetch for a kid the cached set lacks (at most one per
// min_refetch). If no key fits and a JWKS source has no keys at all (the IdP
// never answered), the answer is 503 with Retry-After, not 401: the token
// may well be good.
//
// YAML (on a route):
//   jwt:
//     keys:                          # at least one; kid optional
//       - {secret: ${JWT_SECRET}}
//       - {pem: ${file:keys/idp.pem}, kid: k1}
//       - {jwks: https://idp.example/.well-known/jwks.json,
//          ca: /etc/weir/idp-ca.pem,      # optional: a CA bundle (path or PEM); default the system's
//          refresh: 10m, timeout: 3s, min_refetch: 30s, max_bytes: 1MiB}
//     algorithms: [RS256, ES256]     # default: whatever each key allows
//     issuer: https://idp.example    # iss must equal it (optional)
//     audience: chat                 # aud must contain it (optional)
//     clock_skew: 30s                # default 30s, for exp, nbf, iat
//     from: [header, subprotocol, query, cookie]   # where to look, in order (default [header])
//     subprotocol_prefix: bearer.    # Sec-WebSocket-Protocol entry "bearer.<token>"
//     query_param: access_token
//     cookie: access_token
//     claims_to_headers: {sub: X-User-Id}
//     strip_token: true              # default true: the backend never sees it
//     expiry: close                  # close (default) | ignore: what exp means after the upgrade
//     max_token_bytes: 8KiB
//     refresh:                       # in-band refresh (off by default): a client text
//       type_field: type             #   message {"type": "auth", "token": "<jwt>"} is
//       type: auth                   #   Weir's: a valid token of the same subject moves the
//       token_field: token           #   expiry; any other closes with 1008. The route then
//                                    #   relays through the inspecting pump.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/filter_reader.h"
#include "filters/api.h"
#include "filters/bearer_token.h"
#include "filters/claims.h"
#include "filters/jwt/jose.h"
#include "filters/jwt/jwks_source.h"

namespace weir::filters {

class JwtFilter final : public Filter {
 public:
  struct Settings {
    std::vector<std::shared_ptr<const jose::Key>> keys;   // inline
    std::vector<std::shared_ptr<JwksSource>> sources;     // JWKS URLs
    std::vector<jose::Alg> algorithms;
    std::string issuer, audience;
    std::int64_t skew_s = 30;
    BearerSources bearer;                                 // where the token is (filters/bearer_token.h)
    std::vector<std::pair<std::string, std::string>> claims_to_headers;  // claim -> header
    bool strip = true;
    bool close_on_expiry = true;
    std::size_t max_bytes = 8192;
    struct Refresh {
      std::string type_field = "type", type = "auth", token_field = "token";
    };
    std::optional<Refresh> refresh;
  };
  // A verified token: its claims, identity and the session deadline its exp
  // sets (coarse ms; 0: none).
  struct Token {
    std::shared_ptr<const Claims> claims;
    std::string sub, jti;
    std::int64_t deadline_ms = 0;
  };
  explicit JwtFilter(Settings s) : s_(std::move(s)) {}
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  unsigned hooks() const override { return kHandshake | (s_.refresh ? kMessages : 0u); }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  void declare_metrics(obs::Registry& reg, const std::string& route) const override;
  const Settings& settings() const { return s_; }
  obs::CounterId rejected() const { return rejected_; }
  obs::CounterId accepted() const { return accepted_; }
  obs::CounterId refreshed() const { return refreshed_; }

  using Keys = std::vector<std::shared_ptr<const jose::Key>>;
  // Inline keys and every source's current ones.
  Keys current_keys() const;
  // The handshake's verdict at now_ms (ms since the epoch) with these keys;
  // on success ctx gets the claims' headers, the stripped request, the
  // identity, claims and deadline. *no_key: refused because no key fits the
  // token (a fetch may bring one).
  HandshakeVerdict check(HandshakeContext& ctx, std::int64_t now_ms, const Keys& keys, bool* no_key = nullptr) const;
  HandshakeVerdict check(HandshakeContext& ctx, std::int64_t now_ms) const { return check(ctx, now_ms, current_keys()); }
  // Signature, claims and revocation of one token at now_ms with these keys:
  // "" and `out` filled, or why not (*no_key as for check).
  std::string verify_token(std::string_view token, std::int64_t now_ms, const Keys& keys, Token& out,
                           bool* no_key = nullptr) const;
  std::string verify_token(std::string_view token, std::int64_t now_ms, Token& out) const {
    return verify_token(token, now_ms, current_keys(), out);
  }
  // The token of an in-band refresh message, or nullopt: not one (forwarded).
  std::optional<std::string> refresh_token(std::string_view text_message) const;

 private:
  Settings s_;
  mutable obs::CounterId rejected_, accepted_, refreshed_;
};

}  // namespace weir::filters
