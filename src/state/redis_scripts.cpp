#include "state/redis_scripts.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace weir::state::redis {

namespace {

// Redis's clock, in ms: the same for every instance.
constexpr const char* kNow =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";

// KEYS: leases, nr rate keys, ns slot keys. ARGV: lease id, nr, ns,
// nr x (rate, burst), ns x max. Returns {0,0,0} admitted, {1,i,wait_ms} rate
// i refused, {2,j,0} slot j full. GCRA as state/local_counters.cpp: the key
// holds the theoretical arrival time of the next event, in Redis ms.
const std::string kAdmit = std::string(kNow) + R"lua(
local self, nr, ns = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, nr do
  local rate, burst = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  local interval = 1000 / rate
  local tolerance = math.max(burst, 1) * interval
  local tat = tonumber(redis.call('GET', KEYS[1 + i]) or '0')
  if tat < now then tat = now end
  local nxt = tat + interval
  if nxt - now > tolerance then return {1, i, math.ceil(nxt - tolerance - now)} end
  redis.call('SET', KEYS[1 + i], string.format('%.3f', nxt), 'PX', math.ceil(nxt - now) + 1000)
end
for j = 1, ns do
  local key, max = KEYS[1 + nr + j], tonumber(ARGV[3 + 2 * nr + j])
  local fields = redis.call('HGETALL', key)
  local sum = 0
  for k = 1, #fields, 2 do
    local exp = redis.call('ZSCORE', KEYS[1], fields[k])
    if exp and tonumber(exp) > now then sum = sum + tonumber(fields[k + 1])
    else redis.call('HDEL', key, fields[k]) end
  end
  if sum >= max then return {2, j, 0} end
end
for j = 1, ns do redis.call('HINCRBY', KEYS[1 + nr + j], self, 1) end
return {0, 0, 0}
)lua";

// KEYS: slot keys. ARGV: lease id.
const std::string kRelease = R"lua(
for i = 1, #KEYS do
  if redis.call('HINCRBY', KEYS[i], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[i], ARGV[1]) end
end
return 0
)lua";

// KEYS: leases. ARGV: lease id, ttl ms. Returns 1 when the lease had expired
// (others may have dropped its counts: the caller resyncs), else 0.
const std::string kRenew = std::string(kNow) + R"lua(
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if old and tonumber(old) > now then return 0 end
return 1
)lua";

// KEYS: leases, slot keys. ARGV: old lease id or '', new lease id, ttl ms,
// one count per slot key.
const std::string kResync = std::string(kNow) + R"lua(
if ARGV[1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[1]) end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
for i = 2, #KEYS do redis.call('HSET', KEYS[i], ARGV[2], ARGV[i + 2]) end
return 0
)lua";

// KEYS: bucket. ARGV: rate, burst, want. The same GCRA as admit, taking k
// tokens at once: the most that fit, at most want. Returns {k, ms until the
// next token}.
const std::string kGrant = std::string(kNow) + R"lua(
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local interval = 1000 / rate
local tolerance = math.max(burst, 1) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local k = math.floor((tolerance - (tat - now)) / interval + 1e-9)
if k > want then k = want end
if k < 0 then k = 0 end
if k > 0 then
  tat = tat + k * interval
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end
local wait = math.ceil(tat + interval - tolerance - now)
if wait < 0 then wait = 0 end
return {k, wait}
)lua";

// Revocations (POST /admin/revoke) shared by the instances. KEYS: the set
// (member "s:<sub>" or "j:<jti>", score: until, ms since the epoch) and the
// log (a stream every instance reads on from where it was). ARGV: member,
// until, now (both the revoking instance's clock), instance id, the log's
// length. An existing entry keeps the later end; the set has no TTL (ended
// entries go at every revoke and load; an empty set is no key). Returns the
// log entry's id.
const std::string kRevoke = R"lua(
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if (not cur) or tonumber(cur) < tonumber(ARGV[2]) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'm', ARGV[1], 'u', ARGV[2], 'i', ARGV[4])
)lua";

// KEYS: the set and the log. ARGV: now. Every revocation in force and the
// log's last id (where reading the log goes on from): {id, {member, until,
// ...}}, at once, so nothing added in between is missed.
const std::string kRevocations = R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local id = '0-0'
if #last > 0 then id = last[1][1] end
return {id, redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')}
)lua";

std::string sha1_hex(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha1(), nullptr);
  std::string out;
  char buf[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", md[i]);
    out += buf;
  }
  return out;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

const std::string& script_source(Script s) {
  static const std::array<const std::string*, kScripts> all{&kAdmit, &kRelease,     &kRenew, &kResync,
                                                            &kGrant, &kRevoke, &kRevocations};
  return *all[static_cast<std::size_t>(s)];
}

const std::string& script_sha1(Script s) {
  static const std::array<std::string, kScripts> shas{
      sha1_hex(kAdmit), sha1_hex(kRelease), sha1_hex(kRenew),       sha1_hex(kResync),
      sha1_hex(kGrant), sha1_hex(kRevoke),  sha1_hex(kRevocations)};
  return shas[static_cast<std::size_t>(s)];
}

std::string leases_key(const std::string& prefix) { return prefix + "leases"; }
std::string counter_key(const std::string& prefix, const std::string& key) { return prefix + "c:" + key; }

Call admit_call(const std::string& prefix, const std::string& lease_id, const Admission& a) {
  Call c{Script::admit, {leases_key(prefix)}, {lease_id, std::to_string(a.rates.size()), std::to_string(a.slots.size())}};
  for (const auto& r : a.rates) {
    c.keys.push_back(counter_key(prefix, r.key));
    c.args.push_back(number(r.rate));
    c.args.push_back(number(r.burst));
  }
  for (const auto& s : a.slots) {
    c.keys.push_back(counter_key(prefix, s.key));
    c.args.push_back(std::to_string(s.max));
  }
  return c;
}

AdmissionResult admission_result(std::int64_t kind, std::int64_t index, std::int64_t retry_ms) {
  AdmissionResult r;
  const std::size_t i = index > 0 ? static_cast<std::size_t>(index - 1) : 0;
  switch (kind) {
    case 0: r.kind = AdmissionResult::Kind::admitted; break;
    case 1: r.kind = AdmissionResult::Kind::rate_refused; r.index = i; r.retry_ms = std::max<std::int64_t>(1, retry_ms); break;
    case 2: r.kind = AdmissionResult::Kind::slot_refused; r.index = i; break;
    default: r.kind = AdmissionResult::Kind::unavailable; break;
  }
  return r;
}

Call grant_call(const std::string& prefix, const std::string& key, double rate, double burst, double want) {
  return {Script::grant, {counter_key(prefix, key)}, {number(rate), number(burst), number(std::floor(want))}};
}

Call release_call(const std::string& prefix, const std::string& lease_id, const std::vector<std::string>& keys) {
  Call c{Script::release, {}, {lease_id}};
  for (const auto& k : keys) c.keys.push_back(counter_key(prefix, k));
  return c;
}

Call renew_call(const std::string& prefix, const std::string& lease_id, std::int64_t lease_ttl_ms) {
  return {Script::renew, {leases_key(prefix)}, {lease_id, std::to_string(lease_ttl_ms)}};
}

namespace {
std::string revocations_key(const std::string& prefix) { return prefix + "revoked"; }
std::string revocation_log_key(const std::string& prefix) { return prefix + "revoked:log"; }
}  // namespace

Call revoke_call(const std::string& prefix, const std::string& instance, const Revocations::Entry& e,
                 std::int64_t now_ms) {
  return {Script::revoke,
          {revocations_key(prefix), revocation_log_key(prefix)},
          {revocation_member(e.kind, e.value), std::to_string(e.until_ms), std::to_string(now_ms), instance,
           std::to_string(kRevocationLogLength)}};
}

Call revocations_call(const std::string& prefix, std::int64_t now_ms) {
  return {Script::revocations, {revocations_key(prefix), revocation_log_key(prefix)}, {std::to_string(now_ms)}};
}

std::vector<std::vector<std::string>> revocation_restore_commands(const std::string& prefix,
                                                                  const std::vector<Revocations::Entry>& all) {
  std::vector<std::vector<std::string>> out;
  for (std::size_t i = 0; i < all.size(); i += kRevocationReadBatch) {
    std::vector<std::string> c{"ZADD", revocations_key(prefix), "GT"};
    for (std::size_t j = i; j < std::min(all.size(), i + kRevocationReadBatch); ++j) {
      c.push_back(std::to_string(all[j].until_ms));
      c.push_back(revocation_member(all[j].kind, all[j].value));
    }
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<std::string> revocation_read_command(const std::string& prefix, const std::string& after_id) {
  return {"XREAD", "COUNT", std::to_string(kRevocationReadBatch), "STREAMS", revocation_log_key(prefix), after_id};
}

std::string revocation_member(Revocations::Kind kind, std::string_view value) {
  return std::string(kind == Revocations::Kind::subject ? "s:" : "j:") + std::string(value);
}

std::optional<Revocations::Entry> revocation_entry(std::string_view member, std::string_view until) {
  if (member.size() < 3 || member[1] != ':' || (member[0] != 's' && member[0] != 'j')) return std::nullopt;
  // Scores come back as Lua/Redis numbers ("1.7e12" is possible for large ones).
  char* end = nullptr;
  const std::string u(until);
  const double v = std::strtod(u.c_str(), &end);
  if (u.empty() || end != u.c_str() + u.size() || !(v > 0) || v > 9e15) return std::nullopt;
  return Revocations::Entry{member[0] == 's' ? Revocations::Kind::subject : Revocations::Kind::token_id,
                            std::string(member.substr(2)), static_cast<std::int64_t>(v)};
}

bool LeaseBook::remove(const std::string& key) {
  const auto it = held_.find(key);
  if (it == held_.end()) return false;
  if (--it->second == 0) held_.erase(it);
  return true;
}

Call LeaseBook::resync_call(const std::string& prefix, const std::string& old_id, const std::string& new_id,
                            std::int64_t lease_ttl_ms) const {
  Call c{Script::resync, {leases_key(prefix)}, {old_id, new_id, std::to_string(lease_ttl_ms)}};
  for (const auto& [k, n] : held_) {
    c.keys.push_back(counter_key(prefix, k));
    c.args.push_back(std::to_string(n));
  }
  return c;
}

}  // namespace weir::state::redis
