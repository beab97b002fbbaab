#pragma once
// message_rate: per-connection token buckets on messages/s and bytes/s (with
// bursts), checked from frame headers alone. What happens to a message over
// the rate:
//   close    -> the sender gets Close 1008 "message rate exceeded";
//   drop     -> the message is not relayed (counted, logged at session end);
//   throttle -> it is relayed, and reading from the sender pauses until the
//               buckets are back in credit: TCP backpressure slows it and
//               nothing is lost.
// Per connection, or (per: user) one pair of buckets for all the sessions of
// one user on the route (the token's subject; the client address when there
// is none), shared by every worker; with state.backend redis, by every
// instance too, through budgets leased from Redis in batches (a round trip
// per batch, not per message; docs/configuration.md says what that costs).
//
// YAML (on a route):
//   message_rate:
//     messages_per_second: 100     # at least one of the two rates
//     burst_messages: 200          # default: one second's worth (>= 1)
//     bytes_per_second: 1MiB
//     burst_bytes: 2MiB            # default: one second's worth
//     direction: client            # client (default) | upstream | both: who is limited
//     action: close                # close (default) | drop | throttle
//     per: connection              # connection (default) | user

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

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
    bool per_user = false;
    bool operator==(const Settings&) const = default;
  };

  explicit MessageRateFilter(Settings s);
  ~MessageRateFilter() override;
  static std::shared_ptr<config::FilterSettings> parse(const config::FilterReader& value);

  // per: user learns the user at the handshake (after jwt).
  unsigned hooks() const override { return kFrames | (s_.per_user ? kHandshake : 0u); }
  std::unique_ptr<Instance> instantiate() const override;
  bool same_as(const config::FilterSettings& other) const override;
  const Settings& settings() const { return s_; }
  // weir_message_rate_exceeded_total{route, direction, action}: frames over
  // the rate (close and drop: the refused message; throttle: each pause).
  void declare_metrics(obs::Registry& reg, const std::string& route) const override;
  obs::CounterId exceeded(Direction d) const { return exceeded_[static_cast<int>(d)]; }

  // per: user: the buckets every session of `who` shares (made on first use,
  // gone with the last session holding them).
  struct Shared;
  std::shared_ptr<Shared> shared_for(const std::string& who) const;

 private:
  Settings s_;
  mutable std::mutex users_mu_;
  mutable std::unordered_map<std::string, std::weak_ptr<Shared>> users_;
  mutable std::size_t sweep_at_ = 1024;
  mutable obs::CounterId exceeded_[2];  // set by declare_metrics, before any session
};

}  // namespace weir::filters
