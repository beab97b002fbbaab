#include "admin/responses.h"

#include <charconv>

namespace weir::admin {

namespace json = boost::json;

Response json_response(unsigned status, const json::value& v) {
  return {status, "application/json", json::serialize(v) + "\n", {}};
}

Response error(unsigned status, std::string_view what) { return json_response(status, json::object{{"error", what}}); }

Response method_not_allowed(const char* allow) {
  Response r = error(405, "method not allowed");
  r.headers.emplace_back("Allow", allow);
  return r;
}

std::optional<std::int64_t> ttl_seconds(const json::value& v) {
  if (v.is_int64()) return v.as_int64();
  if (!v.is_string()) return std::nullopt;
  const std::string_view s = v.as_string();
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end == s.data()) return std::nullopt;
  const std::string_view unit(end, static_cast<std::size_t>(s.data() + s.size() - end));
  if (unit == "s" || unit.empty()) return n;
  if (unit == "m") return n * 60;
  if (unit == "h") return n * 3600;
  if (unit == "d") return n * 86400;
  return std::nullopt;
}

}  // namespace weir::admin
