#pragma once
// Route selection for a request head: first route (in config order) whose
// host, path and header conditions all hold.

#include <cstddef>
#include <optional>
#include <string_view>

#include "config/config.h"
#include "http/head.h"

namespace weir::proxy {

std::optional<std::size_t> match_route(const config::Config& cfg, const http::Head& req);

// Host header without port, lower-cased comparison; "*.example.com" matches
// any name ending in ".example.com".
bool host_matches(std::string_view pattern, std::string_view host_header);

}  // namespace weir::proxy
