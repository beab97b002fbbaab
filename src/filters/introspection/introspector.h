#pragma once
// An introspection endpoint (RFC 7662) as the introspection filter asks it:
// the POST on the fetch thread (filters/jwt/https_fetch.h, never on a
// worker), the result cache (introspection_cache.h), and one request per
// token at a time: handshakes that arrive with a token while its lookup is
// in flight wait for that same answer.
//
// Shared: every filter (route, worker, config generation) with the same
// options while one is alive gets the same Introspector, so the cache
// survives reloads and routes share it. Its state is under one mutex, taken
// once per handshake (a cache probe) and once per answer: rare next to the
// data path, which never touches it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "filters/introspection/introspection_cache.h"
#include "filters/jwt/https_fetch.h"
#include "observability/metrics.h"

namespace weir::filters {

class Introspector : public std::enable_shared_from_this<Introspector> {
 public:
  struct Options {
    std::string url;                              // http:// or https://
    std::string ca;                               // https: a CA bundle (path or PEM); empty: the system's
    std::string client_id, client_secret;         // HTTP Basic (RFC 6749 2.3.1); empty id: none
    std::string token_type_hint;                  // sent when not empty (RFC 7662 2.1)
    std::chrono::milliseconds timeout{3'000};     // one request, end to end
    std::size_t max_bytes = 64 * 1024;            // response body
    IntrospectionCache::Limits cache;
  };
  struct Outcome {
    std::shared_ptr<const Introspected> result;   // null: the endpoint gave no usable answer
    std::string error;                            // then why (for logs and the 503 body)
  };
  struct Counters {
    obs::CounterId active, inactive, error;       // one route's weir_introspection_requests_total
  };

  // The live introspector for these options, or a new one. Null and *error
  // for a bad URL or CA bundle.
  static std::shared_ptr<Introspector> get(const Options& o, std::string* error);
  ~Introspector();
  const Options& options() const { return o_; }

  // Runs on the fetch thread with the introspector's mutex held: it must
  // only post (to the session's worker).
  using Waiter = std::function<void(const Outcome&)>;
  struct Lookup {
    std::shared_ptr<const Introspected> cached;   // answered now, from the cache
    std::uint64_t wait_id = 0;                    // else: done runs later; cancel(wait_id) takes it back
    bool joined = false;                          // a lookup of this token was already in flight
  };
  // At now_ms (wall clock). A request this call starts is counted in `c`
  // when it ends.
  Lookup lookup(std::string_view token, std::int64_t now_ms, const Counters& c, Waiter done);
  void cancel(std::uint64_t wait_id);

  // The HTTP request for a token (tests, and the one place that builds it).
  fetch::Request request_for(std::string_view token) const;
  // Tests: requests started so far, entries cached.
  std::uint64_t requests() const;
  std::size_t cached() const;

 private:
  Introspector(Options o, fetch::Url url, std::shared_ptr<const fetch::Trust> trust);
  void finish(const std::string& key, const Counters& c, fetch::Response r);

  const Options o_;
  const fetch::Url url_;
  const std::shared_ptr<const fetch::Trust> trust_;  // null for http://
  const std::string authorization_;                  // "Basic ..." or ""

  mutable std::mutex mu_;
  std::shared_ptr<fetch::Client> client_;            // from the first request
  IntrospectionCache cache_;
  struct Waiting {
    std::uint64_t id;
    Waiter done;
  };
  std::map<std::string, std::vector<Waiting>> in_flight_;  // by token digest
  std::uint64_t next_id_ = 1;
  std::uint64_t requests_ = 0;
  std::uint64_t failures_ = 0;                       // in a row, for one warning per streak
};

// application/x-www-form-urlencoded (RFC 6749 appendix B: the HTML form
// encoding, space as '+').
std::string form_urlencode(std::string_view s);

}  // namespace weir::filters
