#pragma once
// constraints: limits on a message's shape that need no schema, per
// direction: which message types may pass, and for JSON text messages the
// nesting depth (enforced by the parser: a deeper document stops it before
// it builds more), the longest string (values and keys), the longest array,
// the most keys in an object, and an RE2 pattern per JSON pointer. RE2 runs
// in linear time, so a hostile message cannot make a pattern backtrack; it
// is compiled once per config generation and shared by every worker. Runs
// on the inspecting pump.
//
// YAML (on a route):
//   constraints:
//     direction: client          # client (default) | upstream | both
//     message_types: [text]      # text, binary (default: both)
//     max_depth: 16              # JSON limits: any of them makes text messages JSON-only
//     max_string_length: 1024    # bytes
//     max_array_length: 100
//     max_object_keys: 50
//     patterns:                  # the value at the pointer must match whole (absent: no check)
//       - {pointer: /type, match: "chat|typing"}
//     on_failure: close          # close (default): 1007 not JSON, 1003 type, 1008 the rest | drop
//                                # | reject (filters/verdicts.h)

#include <memory>
#include <string>
#include <vector>

#include "config/filter_reader.h"
#include "filters/api.h"
#include "filters/verdicts.h"

namespace re2 {
class RE2;
}

namespace weir::filters {

class ConstraintsFilter final : public Filter {
 public:
  enum class Failure : std::uint8_t { none, message_type, not_json, depth, string_length, array_length, object_keys, pattern };
  static constexpr int kFailures = 7;  // the ones after none

  struct Pattern {
    std::string pointer, text;
    std::shared_ptr<const re2::RE2> re;
  };
  struct Settings {
    bool from[2] = {true, false};       // by Direction: whose messages are checked
    bool text = true, binary = true;    // message types allowed
    unsigned max_depth = 0;             // 0 = no limit (JSON limits below likewise)
    std::uint64_t max_string = 0, max_array = 0, max_keys = 0;
    std::vector<Pattern> patterns;
    OnFailure on_failure;
    bool json() const { return max_depth || max_string || max_array || max_keys || !patterns.empty(); }
  };

  explicit ConstraintsFilter(Settings s);
  ~ConstraintsFilter() override;
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  unsigned hooks() const override { return kMessages; }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  void declare_metrics(obs::Registry& reg, const std::string& route) const override;

  // The verdict on one whole message (unmasked payload); why: for the log
  // and the Close reason, with the JSON pointer that failed.
  // *at (when given): the JSON pointer that failed, or empty.
  Failure check(Direction d, const Message& m, std::string* why, std::string* at = nullptr) const;
  MessageVerdict verdict(Direction d, const Message& m, obs::CounterId* counted) const;

 private:
  Settings s_;
  mutable obs::CounterId failures_[2][kFailures];
};

}  // namespace weir::filters
