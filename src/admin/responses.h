#pragma once
// JSON answers shared by the admin API's handlers (admin .cpp files only:
// this header brings in Boost.JSON).

#include <boost/json.hpp>

#include <cstdint>
#include <optional>
#include <string_view>

#include "admin/http_server.h"

namespace weir::admin {

Response json_response(unsigned status, const boost::json::value& v);
Response error(unsigned status, std::string_view what);  // {"error": what}
Response method_not_allowed(const char* allow);
// A TTL or timeout: seconds as a number, or a string with a unit ("90s", "15m", "1h", "7d").
std::optional<std::int64_t> ttl_seconds(const boost::json::value& v);

}  // namespace weir::admin
