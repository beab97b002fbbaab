#pragma once
// Re-resolves the DNS names of upstream groups with resolve_interval (every
// address of a name becomes a member: config::with_addresses), so a
// Kubernetes headless Service's pods come and go with its DNS answer.
// Lookups run on a thread of their own with c-ares (its servers from the
// top-level `resolver`, else the system's), never on the event loops; the
// results come back on the main thread.

#include <functional>
#include <memory>

#include "config/config.h"

namespace boost::asio {
class io_context;
}

namespace weir::upstream {

class DnsWatch {
 public:
  // changed(all names' addresses) on io's thread when a name's addresses
  // changed (a failed lookup keeps the last ones); it returns false when it
  // could not use them (a refused reload), and the next answer tries again.
  DnsWatch(boost::asio::io_context& io, std::function<bool(const config::ResolvedNames&)> changed);
  ~DnsWatch();
  DnsWatch(const DnsWatch&) = delete;
  DnsWatch& operator=(const DnsWatch&) = delete;

  // Main thread: the names to watch (at start and after each reload); the
  // first lookup of a new name runs at once.
  void set(const config::Config& cfg);
  const config::ResolvedNames& current() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace weir::upstream
