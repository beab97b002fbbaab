#pragma once
// sanitize: rewrites text messages so that what a browser renders from them
// cannot carry markup. The first filter on the inspecting pump (whole
// messages, unmasked; binary messages pass untouched).
//   html: escape         -> & < > " ' become &amp; &lt; &gt; &quot; &#39;
//   control_chars: drop  -> C0 controls except TAB, LF, CR, plus DEL and the
//                           C1 controls (U+0080..U+009F) are removed
// A message that needs neither goes on as it came (no copy). Whole text
// messages only for now; JSON pointers and the HTML5 allowlist ("strip")
// come with the message inspection work.
//
// YAML (on a route):
//   sanitize:
//     html: escape            # escape (default) | keep
//     control_chars: drop     # drop | keep (default)
//     direction: both         # client | upstream | both (default): whose messages

#include <memory>
#include <string>
#include <string_view>

#include "config/filter_reader.h"
#include "filters/api.h"

namespace weir::filters {

struct SanitizeRules {
  bool escape_html = true;
  bool drop_controls = false;
  bool operator==(const SanitizeRules&) const = default;
};

// The sanitized text, or false when `text` needs no change (out untouched).
bool sanitize_text(std::string_view text, const SanitizeRules& rules, std::string& out);

class SanitizeFilter final : public Filter {
 public:
  SanitizeFilter(SanitizeRules rules, bool from_client, bool from_upstream)
      : rules_(rules), from_{from_client, from_upstream} {}
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  unsigned hooks() const override { return kMessages; }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;

  const SanitizeRules& rules() const { return rules_; }
  // Messages going direction d are sanitized.
  bool applies(Direction d) const { return from_[static_cast<int>(d)]; }

 private:
  SanitizeRules rules_;
  bool from_[2];  // by Direction: to_upstream = the client's messages
};

}  // namespace weir::filters
