// W3C traceparent (observability/trace.h) and admin query strings
// (admin/http_server.h): both read text a client controls.
//
// Oracles: a traceparent that parses re-serializes (with a new span id) to
// one that parses to the same trace id and flags; a valid version-00 value
// is exactly 55 bytes; query_param never returns more bytes than the query.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "admin/http_server.h"
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
  return 0;
}
