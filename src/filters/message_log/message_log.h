#pragma once
// log_messages: per-message metadata events in the audit log ("message":
// session id, trace id, route, direction, opcode, size; never the payload),
// for a sampled share of messages. From frame headers alone (the fast
// pump): a message's size is the sum of its frames' payload lengths.
//
// YAML (on a route):
//   log_messages: true                 # every message
//   log_messages: {sample: 0.01}       # 1 message in 100, chosen at random

#include <memory>

#include "config/filter_reader.h"
#include "filters/api.h"

namespace weir::filters {

class MessageLogFilter final : public Filter {
 public:
  explicit MessageLogFilter(double sample) : sample_(sample) {}
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  // Off (sample 0): no hook, so the route pays nothing for it.
  unsigned hooks() const override { return sample_ > 0 ? (kHandshake | kFrames) : 0; }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  double sample() const { return sample_; }

 private:
  double sample_;  // 0..1
};

}  // namespace weir::filters
