#pragma once
// What the jwt and introspection filters share between routes and config
// generations: one source (a JWKS URL, an introspection endpoint) per set of
// settings, kept while any filter holds it, and the counters their fetch
// thread writes.

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "observability/metrics.h"

namespace weir::filters {

template <class T>
class SharedSources {
 public:
  // The live source for `key` (a text of every setting that matters), or
  // make()'s new one (null: it failed, nothing is kept).
  template <class Make>
  std::shared_ptr<T> get(const std::string& key, Make make) {
    std::lock_guard lock(mu_);
    for (auto it = live_.begin(); it != live_.end();) it = it->second.expired() ? live_.erase(it) : std::next(it);
    if (auto it = live_.find(key); it != live_.end())
      if (auto s = it->second.lock()) return s;
    std::shared_ptr<T> s = make();
    if (s) live_[key] = s;
    return s;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::weak_ptr<T>> live_;
};

// A counter written from a fetch thread (not a worker) into the main
// thread's slot: cells only such requests touch, behind one lock (rare events).
void count_off_worker(obs::CounterId id);

}  // namespace weir::filters
