#pragma once
// The filter seam (design: "Filters"). A route is a chain of filters, built
// once from the immutable config and shared by every worker. A handshake
// filter sees the client's request before any upstream is contacted and may
// refuse it with an HTTP status; per-message hooks come with the filters that
// need them (rate limits, validation) and run on the scanner's frame events.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "http/head.h"

namespace weir::filters {

struct HandshakeContext {
  const http::Head& request;
  std::string_view client_ip;
  const config::Route& route;
  std::string_view client_cert = {};  // verified TLS client certificate subject (RFC 2253), or ""
};

// status 0 = continue with the next filter.
struct Verdict {
  unsigned status = 0;
  std::string reason;
};

class HandshakeFilter {
 public:
  virtual ~HandshakeFilter() = default;
  virtual std::string_view name() const = 0;
  virtual Verdict on_handshake(const HandshakeContext& ctx) const = 0;
};

// One route's filters, in the order the design fixes (ip policy, origin,
// connection limits, authn, authz).
class Chain {
 public:
  void add(std::unique_ptr<const HandshakeFilter> f) { handshake_.push_back(std::move(f)); }
  // The first refusal, or continue.
  Verdict run_handshake(const HandshakeContext& ctx) const;
  std::size_t size() const { return handshake_.size(); }

 private:
  std::vector<std::unique_ptr<const HandshakeFilter>> handshake_;
};

// Chains for every route of cfg, index for index.
std::vector<Chain> build_chains(const config::Config& cfg);

}  // namespace weir::filters
