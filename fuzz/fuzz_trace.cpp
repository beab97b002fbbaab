// Text a client controls, outside the HTTP parser: W3C traceparent
// (observability/trace.h), admin query strings (admin/http_server.h),
// X-Forwarded-For chains and CIDR blocks (net/cidr.h), PROXY protocol
// headers (net/proxy_protocol.h).
//
// Oracles: a traceparent that parses re-serializes (with a new span id) to
// one that parses to the same trace id and flags; a valid version-00 value
// is exactly 55 bytes; query_param never returns more bytes than the query;
// the client found in X-Forwarded-For is the peer or a valid address; a
// parsed CIDR block contains its own network address; a PROXY header takes
// no more than it was given and names a valid address.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "admin/http_server.h"
#include "net/cidr.h"
#include "net/proxy_protocol.h"
#include "observability/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (const auto p = weir::obs::parse_traceparent(in)) {
    if (in.substr(0, 2) == "00" && in.size() != 55) std::abort();
    const std::string again = weir::obs::make_traceparent(*p);
    const auto q = weir::obs::parse_traceparent(again);
    if (!q || q->trace.hex() != p->trace.hex() || q->flags != p->flags) std::abort();
  }
  const std::string query(in);
  for (const char* name : {"offset", "limit", "a", ""}) {
    if (weir::admin::query_param(query, name).size() > query.size()) std::abort();
  }
  static const std::vector<weir::net::Cidr> trusted{*weir::net::parse_cidr("10.0.0.0/8"),
                                                    *weir::net::parse_cidr("2001:db8::/32")};
  const std::string client = weir::net::client_from_forwarded("10.0.0.1", trusted, {in});
  if (client != "10.0.0.1" && !weir::net::parse_ip(client)) std::abort();
  if (const auto c = weir::net::parse_cidr(in)) {
    if (!c->contains(c->addr)) std::abort();
  }
  const auto h = weir::net::parse_proxy_header(data, size);
  if (h.status == weir::net::ProxyHeader::Status::done) {
    if (h.size > size || h.size > weir::net::kMaxProxyHeader) std::abort();
    if (!h.local && !weir::net::parse_ip(h.source)) std::abort();
  }
  return 0;
}
