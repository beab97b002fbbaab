// Upstream response head: parse, check against a fixed client request, and
// build the client's 101.
#include <string>

#include "http/head.h"
#include "http/upgrade.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string req_raw =
      "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
  static weir::http::Head req;
  static const bool ok = weir::http::parse_request_head(req_raw, 8192, req) == weir::http::ParseStatus::complete;
  if (!ok) __builtin_trap();
  const std::string in(reinterpret_cast<const char*>(data), size);
  weir::http::Head resp;
  if (weir::http::parse_response_head(in, 16384, resp) != weir::http::ParseStatus::complete) return 0;
  auto v = weir::http::check_upstream_response(resp, req);
  if (!v.refusal) (void)weir::http::build_switching_response(req, resp);
  return 0;
}
