#pragma once
// What the Redis store sends, apart from the sending: the Lua scripts, the
// keys and arguments of each call, and the instance's book of the slots it
// holds (which it writes back to Redis after every reconnect). No hiredis
// and no I/O here, so unit tests cover it without a server.
//
// Lease scheme: every instance (every connection epoch of it) has a lease in
// the sorted set <prefix>leases, scored by its expiry in Redis's own clock
// (TIME: the instances' clocks do not matter), renewed every lease_ttl/3. A
// slot key is a hash: field = lease id, value = that lease's slots. A count
// whose lease expired or is gone is not counted, and the next admit on that
// key deletes it: an instance killed with -9 stops counting lease_ttl after
// its last renewal.

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "state/shared_counters.h"

namespace weir::state::redis {

enum class Script : std::uint8_t { admit, release, renew, resync, grant };
constexpr std::size_t kScripts = 5;
const std::string& script_source(Script s);
const std::string& script_sha1(Script s);  // hex, for EVALSHA

struct Call {
  Script script;
  std::vector<std::string> keys, args;
};

std::string leases_key(const std::string& prefix);
// The filters' keys (already distinct for rates and slots) under the prefix.
std::string counter_key(const std::string& prefix, const std::string& key);

Call admit_call(const std::string& prefix, const std::string& lease_id, const Admission& a);
// The script's reply {kind, 1-based index, retry ms} as a result.
AdmissionResult admission_result(std::int64_t kind, std::int64_t index, std::int64_t retry_ms);
// Up to `want` tokens at once from one bucket: reply {granted, wait_ms}.
Call grant_call(const std::string& prefix, const std::string& key, double rate, double burst, double want);
Call release_call(const std::string& prefix, const std::string& lease_id, const std::vector<std::string>& keys);
Call renew_call(const std::string& prefix, const std::string& lease_id, std::int64_t lease_ttl_ms);

// The slots this instance holds, by filter key (Redis thread only).
class LeaseBook {
 public:
  void add(const std::string& key) { ++held_[key]; }
  // False when the key held nothing (a release without an acquire).
  bool remove(const std::string& key);
  std::uint32_t held(const std::string& key) const {
    const auto it = held_.find(key);
    return it == held_.end() ? 0 : it->second;
  }
  std::size_t keys() const { return held_.size(); }
  // After a (re)connect or a lost lease: a new lease id takes every count,
  // and the old one (if any) is dropped at once.
  Call resync_call(const std::string& prefix, const std::string& old_id, const std::string& new_id,
                   std::int64_t lease_ttl_ms) const;

 private:
  std::unordered_map<std::string, std::uint32_t> held_;
};

}  // namespace weir::state::redis
