#pragma once
// max_message: a message size limit per direction, from frame headers alone:
// a message (all its fragments) over the limit closes the session with 1009
// to its sender before a byte of the offending frame is relayed. Narrower
// than limits.max_message_bytes, which applies both ways.
//
// YAML (on a route):
//   max_message: 64KiB                 # both directions
//   max_message: {client_to_upstream: 64KiB, upstream_to_client: 1MiB}

#include <cstdint>
#include <memory>

#include "config/filter_reader.h"
#include "filters/api.h"

namespace weir::filters {

class MaxMessageFilter final : public Filter {
 public:
  // 0 = no limit that way.
  MaxMessageFilter(std::uint64_t to_upstream, std::uint64_t to_client) : limit_{to_upstream, to_client} {}
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  unsigned hooks() const override { return kFrames; }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  std::uint64_t limit(Direction d) const { return limit_[static_cast<int>(d)]; }
  // weir_max_message_exceeded_total{route, direction}: sessions closed 1009.
  void declare_metrics(obs::Registry& reg, const std::string& route) const override;
  obs::CounterId exceeded(Direction d) const { return exceeded_[static_cast<int>(d)]; }

 private:
  std::uint64_t limit_[2];
  mutable obs::CounterId exceeded_[2];  // set by declare_metrics, before any session
};

}  // namespace weir::filters
