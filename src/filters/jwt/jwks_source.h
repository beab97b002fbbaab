#pragma once
// A JWKS URL as a key source for the jwt filter: the keys fetched over HTTPS
// (https_fetch.h), cached, refreshed, refetched on an unknown kid at most
// once per min_refetch, and served stale while the IdP cannot answer.
//
// Shared: every filter (route, worker, and config generation) that names the
// same URL with the same options while one is alive gets the same source, so
// an IdP sees one client per URL, and a reload keeps the cached keys. Its
// state is under a mutex; workers read the key snapshot (a shared_ptr, copied
// under the lock) and register waiters; everything else happens on the fetch
// thread. The fetch thread lives while any source holds it.
//
// Lifecycle: start() (from JwtFilter::declare_metrics, once a generation is
// in use) makes the first fetch; after each fetch the next one is due after
// the cache lifetime (success) or min_refetch (failure: retried at that pace
// while the IdP is down; the keys from the last success stay in use).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "filters/jwt/https_fetch.h"
#include "filters/jwt/jose.h"
#include "observability/metrics.h"

namespace weir::filters {

class JwksSource : public std::enable_shared_from_this<JwksSource> {
 public:
  struct Options {
    std::string url;
    std::string ca;                                  // path or PEM; empty: the system's store
    std::chrono::milliseconds refresh{10 * 60'000};  // the longest the keys are kept unrefreshed
    std::chrono::milliseconds timeout{3'000};        // one fetch, end to end
    std::chrono::milliseconds min_refetch{30'000};   // the least time between two fetch starts
    std::size_t max_bytes = std::size_t{1} << 20;    // response body
  };
  using Keys = std::vector<std::shared_ptr<const jose::Key>>;
  struct Counters {
    obs::CounterId ok, failed, invalid;  // one route's weir_jwks_fetches_total series
  };

  // The live source for these options, or a new one (not started). Null and
  // *error for a bad URL or CA bundle.
  static std::shared_ptr<JwksSource> get(const Options& o, std::string* error);
  ~JwksSource();

  const Options& options() const { return o_; }
  // Idempotent: the first fetch, unless one ran already.
  void start();
  // Adds a route's series; each fetch counts in every route's (idempotent).
  void add_counters(const Counters& c);

  // The keys of the last good fetch; null before any.
  std::shared_ptr<const Keys> keys() const;

  // A handshake needs a key this source may not have yet (unknown kid, or no
  // keys at all). If a fetch is in flight, or one may start now (never
  // fetched; or min_refetch passed since the last one started), done is
  // queued and runs on the fetch thread, with the source's mutex held (it
  // must only post), when that fetch ends; the returned id cancels it.
  // 0: no fetch will come; decide with what there is.
  using Waiter = std::function<void()>;
  std::uint64_t wait_for_keys(Waiter done);
  void cancel(std::uint64_t id);

  // Tests: fetches started so far.
  std::uint64_t fetches() const;

 private:
  JwksSource(Options o, fetch::Url url, std::shared_ptr<const fetch::Trust> trust);
  void begin_fetch_locked(std::int64_t now_ms);
  void finish(fetch::Response r);
  void refresh_due(std::uint64_t seq);

  const Options o_;
  const fetch::Url url_;
  const std::shared_ptr<const fetch::Trust> trust_;
  std::shared_ptr<fetch::Client> client_;  // from start()

  mutable std::mutex mu_;
  std::shared_ptr<const Keys> keys_;
  bool started_ = false;
  bool fetching_ = false;
  std::int64_t last_start_ms_ = 0;  // steady clock
  std::uint64_t fetches_ = 0;
  std::uint64_t failures_ = 0;      // in a row
  std::uint64_t timer_seq_ = 0;     // only the latest refresh timer acts
  std::uint64_t next_waiter_ = 1;
  std::map<std::uint64_t, Waiter> waiters_;
  std::vector<Counters> counters_;
};

}  // namespace weir::filters
