#pragma once
// The main thread's side of load balancing, once per process (not per
// worker): active health checks of every member of every group that has
// them, the 1012 at the end of a drain, and rebalancing of long-lived
// sessions after a group's spread went past its ratio. Workers see the
// results through each member's MemberState.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "upstream/group.h"

namespace boost::asio {
class io_context;
}

namespace weir::net {
class TlsClient;
}

namespace weir::upstream {

class Supervisor {
 public:
  // Asks the workers to close up to `max` relaying sessions on `member`
  // that are at least min_age_ms old (a random choice among them) with
  // code and reason; done(how many).
  using CloseFn = std::function<void(const MemberState* member, std::size_t max, std::int64_t min_age_ms,
                                     std::uint16_t code, std::string reason, std::function<void(std::size_t)> done)>;

  Supervisor(boost::asio::io_context& io, CloseFn close);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // The groups of the running generation (at start and after each reload),
  // and by group the TLS client of its wss:// members (null: none).
  void set_groups(std::vector<std::shared_ptr<const Group>> groups,
                  std::vector<std::shared_ptr<const net::TlsClient>> tls);
  void stop();

  // The admin API's view and its drain switch.
  struct MemberStatus {
    std::string text;
    bool healthy, ejected, draining, backup;
    std::int64_t sessions;
    std::uint32_t weight;
    std::string last_check;  // the last failed check's reason ("" = passing or none)
    std::int64_t prewarm_idle = -1;  // idle pre-warmed connections, all workers (-1: no prewarm)
  };
  struct GroupStatus {
    std::string name;
    bool anonymous;
    std::string policy;
    std::vector<MemberStatus> members;
    std::size_t available = 0;
  };
  std::vector<GroupStatus> status() const;
  // Drains (on) or takes back (off) a member of a named group, or of a
  // route's own list ("route/<name>"); timeout 0: the group's drain_timeout.
  // False when there is no such member.
  bool drain(const std::string& group, const std::string& member, bool on, std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace weir::upstream
