#pragma once
// message_rate: per-connection token buckets on messages/s and bytes/s (with
// bursts), checked from frame headers alone. What happens to a message over
// the rate:
//   close    -> the sender gets Close 1008 "message rate exceeded";
//   drop     -> the message is not relayed (counted, logged at session end);
//   throttle -> it is relayed, and reading from the sender pauses until the
//               buckets are back in credit: TCP backpressure slows it and
//               nothing is lost.
// Local to one connection; the Redis-shared limits come with the limits work.
//
// YAML (on a route):
//   message_rate:
//     messages_per_second: 100     # at least one of the two rates
//     burst_messages: 200          # default: one second's worth (>= 1)
//     bytes_per_second: 1MiB
//     burst_bytes: 2MiB            # default: one second's worth
//     direction: client            # client (default) | upstream | both: who is limited
//     action: close                # close (default) | drop | throttle

#include <memory>

#include "config/filter_reader.h"
#include "filters/api.h"

namespace weir::filters {

class MessageRateFilter final : public Filter {
 public:
  enum class Action : std::uint8_t { close, drop, throttle };
  struct Settings {
    double messages_per_second = 0, burst_messages = 0;  // 0 = no message limit
    double bytes_per_second = 0, burst_bytes = 0;        // 0 = no byte limit
    bool limit_client = true, limit_upstream = false;    // whose messages count
    Action action = Action::close;
    bool operator==(const Settings&) const = default;
  };

  explicit MessageRateFilter(Settings s) : s_(s) {}
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  unsigned hooks() const override { return kFrames; }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  const Settings& settings() const { return s_; }
  // weir_message_rate_exceeded_total{route, direction, action}: frames over
  // the rate (close and drop: the refused message; throttle: each pause).
  void declare_metrics(obs::Registry& reg, const std::string& route) const override;
  obs::CounterId exceeded(Direction d) const { return exceeded_[static_cast<int>(d)]; }

 private:
  Settings s_;
  mutable obs::CounterId exceeded_[2];  // set by declare_metrics, before any session
};

}  // namespace weir::filters
