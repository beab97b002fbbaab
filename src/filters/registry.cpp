// Every filter type Weir knows: its route YAML key, its place in the chain
// and its parser (config/filter_types.h). A new filter adds one line here.

#include <algorithm>

#include "config/filter_types.h"
#include "filters/authz/authz.h"
#include "filters/connection_limits/connection_limits.h"
#include "filters/constraints/constraints.h"
#include "filters/introspection/introspection_filter.h"
#include "filters/ip_policy/ip_policy.h"
#include "filters/json_schema/json_schema.h"
#include "filters/jwt/jwt_filter.h"
#include "filters/max_message/max_message.h"
#include "filters/message_log/message_log.h"
#include "filters/message_rate/message_rate.h"
#include "filters/origin/origin_filter.h"
#include "filters/sanitize/sanitize.h"

namespace weir::config {

namespace {
// Order: ip policy 10, origin 20, connection limits 30, authn 40, authz 50,
// then per-message filters (sizes before rates: an oversized message is
// refused without spending tokens), then the ones that read payloads (80+:
// validation before rewriting).
constexpr FilterType kTypes[] = {
    {"ip_policy", 10, &filters::IpPolicyFilter::parse},
    {"origins", 20, &filters::OriginFilter::parse},
    {"connection_limits", 30, &filters::ConnectionLimitsFilter::parse_connection},
    {"jwt", 40, &filters::JwtFilter::parse},
    {"introspection", 41, &filters::IntrospectionFilter::parse},
    {"user_limits", 45, &filters::ConnectionLimitsFilter::parse_user},
    {"authz", 50, &filters::AuthzFilter::parse},
    {"max_message", 60, &filters::MaxMessageFilter::parse},
    {"message_rate", 70, &filters::MessageRateFilter::parse},
    {"constraints", 75, &filters::ConstraintsFilter::parse},
    {"json_schema", 80, &filters::JsonSchemaFilter::parse},
    {"sanitize", 90, &filters::SanitizeFilter::parse},
    // Last: it logs what the filters before it let through.
    {"log_messages", 95, &filters::MessageLogFilter::parse},
};
}  // namespace

std::span<const FilterType> filter_types() { return kTypes; }

const FilterType* find_filter_type(std::string_view key) {
  for (const auto& t : kTypes)
    if (t.key == key) return &t;
  return nullptr;
}

}  // namespace weir::config
