#pragma once
// The seam between the config loader and the filters (design: "Filters").
// A filter type names the YAML key it owns in a route and parses its own
// settings with a FilterReader (errors at file:line:col like every other
// key). The loader does not know any filter: it asks filter_types(), which
// src/filters/registry.cpp defines (config/ never includes filters/; the link
// joins the two). What a parse returns is opaque here; the filters' runtime
// (filters/api.h) builds chains from it.

#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "config/config.h"

namespace weir::config {

class FilterReader;

// A filter's parsed, immutable settings, shared by every worker for the life
// of a config generation. The concrete type is the filter's (filters/api.h).
struct FilterSettings {
  virtual ~FilterSettings() = default;
  std::string key;   // the YAML key it came from (set by the loader)
  SourcePos pos;     // of that key
  // Same behaviour (for reload summaries); where it was written does not count.
  virtual bool same_as(const FilterSettings& other) const = 0;
  // The key of a filter this one needs before it on the same route (authz
  // reads the claims jwt or introspection verified), or "": the loader
  // refuses the route without it, at this filter's key. Alternatives are
  // separated by '|' ("jwt|introspection": either will do).
  virtual std::string_view needs() const { return {}; }
};

struct FilterType {
  std::string_view key;  // a route's YAML key
  int order;             // place in the chain: lower runs first (ip policy 10, origin 20, limits 30, authn 40, authz 50, message 60+)
  // Parses the value under `key`; throws ConfigError through the reader.
  std::shared_ptr<FilterSettings> (*parse)(const FilterReader& value);
};

// Every filter type Weir knows, defined in src/filters/registry.cpp.
std::span<const FilterType> filter_types();
const FilterType* find_filter_type(std::string_view key);

}  // namespace weir::config
