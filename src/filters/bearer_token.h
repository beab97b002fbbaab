#pragma once
// Where a bearer token rides on a WebSocket upgrade, shared by the filters
// that authenticate with one (jwt, introspection): `Authorization: Bearer`,
// a Sec-WebSocket-Protocol entry with a prefix (browsers cannot set headers),
// a query parameter, or a cookie, looked for in a configured order. Finding
// a token also says how to take it out of the request the upstream gets.
//
// YAML (keys of the filter that uses it):
//   from: [header, subprotocol, query, cookie]   # in order (default [header])
//   subprotocol_prefix: bearer.                  # entry "bearer.<token>"
//   query_param: access_token
//   cookie: access_token

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/filter_reader.h"
#include "filters/api.h"

namespace weir::filters {

struct BearerSources {
  enum class Source : std::uint8_t { header, subprotocol, query, cookie };
  std::vector<Source> from{Source::header};
  std::string subprotocol_prefix = "bearer.";
  std::string query_param = "access_token";
  std::string cookie = "access_token";

  // Reads the YAML keys above (each optional) of the filter's mapping; the
  // filter's expect_keys must allow them.
  void parse(const config::FilterReader& v);
  bool operator==(const BearerSources&) const = default;
};

// A token found in a request, and the request without it.
struct FoundToken {
  std::string token;
  Headers rewrite;     // fields to replace (an empty value removes them)
  std::string target;  // the target without the token ("" = unchanged)
};

// The first token in the configured order, or nullopt.
std::optional<FoundToken> find_bearer_token(const http::Head& req, const BearerSources& s);

// Takes the token out of what the upstream gets (HandshakeContext's rewrites).
void strip_bearer_token(HandshakeContext& ctx, FoundToken& found);

// 401 with the RFC 6750 challenge (error="invalid_token" unless the token is
// simply missing).
HandshakeVerdict bearer_unauthorized(std::string why);

}  // namespace weir::filters
