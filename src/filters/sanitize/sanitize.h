#pragma once
// sanitize: rewrites text messages so that what a browser renders from them
// cannot carry markup, either way (a route can clean what a backend
// broadcasts to browsers). The first filter on the inspecting pump (whole
// messages, unmasked; binary messages pass untouched); a rewritten message
// is re-framed, and re-masked towards the backend, by the pump.
//   html: escape         -> & < > " ' become &amp; &lt; &gt; &quot; &#39;
//   html: strip          -> parsed as an HTML5 fragment, only allowlisted
//                           tags and attributes kept (html_strip.h)
//   control_chars: drop  -> C0 controls except TAB, LF, CR, plus DEL and the
//                           C1 controls (U+0080..U+009F) are removed (after
//                           html, so that controls written as entities go too)
// The target is the whole text message, or with `pointers` the strings at
// those JSON pointers (RFC 6901) of a JSON text message: one that is not JSON
// is refused (1007, or dropped or answered per on_failure); a pointer that is
// absent or not at a string is left alone. A message needing no change goes
// on as it came, byte for byte (no copy); a changed JSON message is
// re-serialized.
//
// YAML (on a route):
//   sanitize:
//     html: strip             # escape (default) | strip | keep
//     allow: [b, i, "a[href]"] # strip only: tag or tag[attr,...]; default b, i, em, strong, a[href]
//     max_tags: 256           # strip only: a fragment with more '<' is escaped instead of parsed
//     max_bytes: 16KiB        # strip only: a longer fragment likewise
//     control_chars: drop     # drop | keep (default)
//     pointers: [/msg/text]   # JSON pointers to the strings to clean (default: the whole message)
//     on_failure: close       # with pointers, a message that is not JSON: close (1007, default) | drop
//                             # | reject (with reject_reply, log_payload: filters/verdicts.h)
//     direction: both         # client | upstream | both (default): whose messages

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/filter_reader.h"
#include "filters/api.h"
#include "filters/sanitize/html_strip.h"
#include "filters/verdicts.h"

namespace weir::filters {

struct SanitizeRules {
  enum class Html : std::uint8_t { keep, escape, strip };
  Html html = Html::escape;
  bool drop_controls = false;
  HtmlPolicy policy = HtmlPolicy::defaults();  // strip's allowlist
  bool operator==(const SanitizeRules&) const = default;
};

// The sanitized text, or false when `text` needs no change (out: unspecified).
bool sanitize_text(std::string_view text, const SanitizeRules& rules, std::string& out);

class SanitizeFilter final : public Filter {
 public:
  struct Settings {
    SanitizeRules rules;
    std::vector<std::string> pointers;  // empty: the whole text message
    OnFailure on_failure;               // pointers, not JSON: close 1007 (default), drop or reject
    bool from[2] = {true, true};        // by Direction: to_upstream = the client's messages
    bool operator==(const Settings&) const = default;
  };
  enum class Outcome : std::uint8_t { unchanged, rewritten, not_json };

  explicit SanitizeFilter(Settings s) : s_(std::move(s)) {}
  SanitizeFilter(SanitizeRules rules, bool from_client, bool from_upstream)
      : s_{std::move(rules), {}, {}, {from_client, from_upstream}} {}
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  unsigned hooks() const override { return kMessages; }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  void declare_metrics(obs::Registry& reg, const std::string& route) const override;

  const SanitizeRules& rules() const { return s_.rules; }
  const Settings& settings() const { return s_; }
  // Messages going direction d are sanitized.
  bool applies(Direction d) const { return s_.from[static_cast<int>(d)]; }

  // One text message's payload: rewritten in place, left alone, or not JSON
  // on a pointers route (*why says why). scratch: reused between calls.
  Outcome sanitize(std::string& payload, std::string& scratch, std::string* why) const;
  // The whole verdict, as the session's part gives it; *counted: the
  // counter it adds one to, if any.
  MessageVerdict verdict(Direction d, Message& m, std::string& scratch, obs::CounterId* counted) const;

 private:
  Settings s_;
  mutable obs::CounterId rewrites_[2], failures_[2];
};

}  // namespace weir::filters
