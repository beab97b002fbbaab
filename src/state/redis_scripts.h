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
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "state/revocations.h"
#include "state/shared_counters.h"

namespace weir::state::redis {

enum class Script : std::uint8_t { admit, release, renew, resync, grant, revoke, revocations };
constexpr std::size_t kScripts = 7;
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

// Shared revocations: the set of those in force and a log (a Redis stream,
// trimmed to about kRevocationLogLength entries) that every instance reads
// on from the last id it saw, every kRevocationPollMs, kRevocationReadBatch
// at a time. An instance that falls further behind than the log's length
// (only while connected: after a reconnect it loads the set whole) misses
// the closing of live sessions of those entries, not the entries' refusals.
constexpr std::size_t kRevocationLogLength = 10'000;
constexpr std::size_t kRevocationReadBatch = 1'000;
constexpr std::int64_t kRevocationPollMs = 200;
Call revoke_call(const std::string& prefix, const std::string& instance, const Revocations::Entry& e,
                 std::int64_t now_ms);
Call revocations_call(const std::string& prefix, std::int64_t now_ms);
// After a (re)connect: every revocation this instance knows back into the
// set (ZADD GT: a later end wins), so a Redis that restarted empty learns
// them again from any instance, as the lease book writes slot counts back.
std::vector<std::vector<std::string>> revocation_restore_commands(const std::string& prefix,
                                                                  const std::vector<Revocations::Entry>& all);
std::vector<std::string> revocation_read_command(const std::string& prefix, const std::string& after_id);
std::string revocation_member(Revocations::Kind kind, std::string_view value);
// A set member and its score (or a log entry's m and u fields) as an entry;
// nullopt for anything else.
std::optional<Revocations::Entry> revocation_entry(std::string_view member, std::string_view until);

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
