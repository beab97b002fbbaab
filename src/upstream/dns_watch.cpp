#include "upstream/dns_watch.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "observability/log.h"

namespace weir::upstream {

namespace asio = boost::asio;

namespace {

struct Lookup {
  std::string name;
  int status = ARES_ENOTFOUND;
  std::set<std::string> addresses;  // sorted, unique: a reordered answer is no change
};

// One round of lookups, on the resolver thread: every name at once on one
// c-ares channel, waited for with poll (descriptors may be past FD_SETSIZE
// in a process with thousands of sockets, so never select).
void resolve_all(const config::Resolver& conf, std::vector<Lookup>& out) {
  ares_options opts{};
  opts.timeout = static_cast<int>(std::max<std::int64_t>(conf.timeout.count() / 2, 50));
  opts.tries = 2;
  ares_channel ch = nullptr;
  if (ares_init_options(&ch, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES) != ARES_SUCCESS) {
    for (auto& l : out) l.status = ARES_ENOMEM;
    return;
  }
  if (!conf.nameservers.empty()) {
    std::string csv;
    for (const auto& s : conf.nameservers) csv += (csv.empty() ? "" : ",") + s;
    if (ares_set_servers_ports_csv(ch, csv.c_str()) != ARES_SUCCESS) {
      for (auto& l : out) l.status = ARES_EBADSTR;
      ares_destroy(ch);
      return;
    }
  }
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  for (auto& l : out) {
    ares_getaddrinfo(
        ch, l.name.c_str(), nullptr, &hints,
        [](void* arg, int status, int, ares_addrinfo* res) {
          auto* lk = static_cast<Lookup*>(arg);
          lk->status = status;
          if (res == nullptr) return;
          for (const ares_addrinfo_node* n = res->nodes; n != nullptr; n = n->ai_next) {
            char text[INET6_ADDRSTRLEN] = {};
            const void* a = n->ai_family == AF_INET6
                                ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(n->ai_addr)->sin6_addr)
                                : static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(n->ai_addr)->sin_addr);
            if (inet_ntop(n->ai_family, a, text, sizeof text) != nullptr) lk->addresses.insert(text);
          }
          ares_freeaddrinfo(res);
        },
        &l);
  }
  for (;;) {
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    const int bits = ares_getsock(ch, socks, ARES_GETSOCK_MAXNUM);
    std::vector<pollfd> fds;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short ev = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) ev |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) ev |= POLLOUT;
      if (ev != 0) fds.push_back({socks[i], ev, 0});
    }
    if (fds.empty()) break;  // every lookup answered
    timeval tv{};
    const timeval* t = ares_timeout(ch, nullptr, &tv);
    const int ms = t == nullptr ? 1000 : static_cast<int>(t->tv_sec * 1000 + t->tv_usec / 1000);
    ::poll(fds.data(), fds.size(), std::max(ms, 1));
    bool any = false;
    for (const auto& p : fds) {
      if (p.revents == 0) continue;
      any = true;
      ares_process_fd(ch, (p.revents & (POLLIN | POLLERR | POLLHUP)) ? p.fd : ARES_SOCKET_BAD,
                      (p.revents & POLLOUT) ? p.fd : ARES_SOCKET_BAD);
    }
    if (!any) ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
  }
  ares_destroy(ch);
}

}  // namespace

struct DnsWatch::Impl : std::enable_shared_from_this<DnsWatch::Impl> {
  Impl(asio::io_context& i, std::function<bool(const config::ResolvedNames&)> c)
      : io(i), changed(std::move(c)), timer(i) {
    static std::once_flag once;
    std::call_once(once, [] { ares_library_init(ARES_LIB_INIT_ALL); });
    thread = std::thread([this] { run(); });
  }

  asio::io_context& io;
  std::function<bool(const config::ResolvedNames&)> changed;
  asio::steady_timer timer;
  // Main thread.
  std::map<std::string, config::Millis> names;
  config::Resolver conf;
  config::ResolvedNames current;
  std::set<std::string> failing;  // names whose last lookup failed (logged once per streak)
  bool in_flight = false, again = false;
  // The resolver thread's queue.
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<config::Resolver, std::vector<std::string>>> jobs;
  bool stop = false;
  std::thread thread;

  void run() {
    for (;;) {
      std::pair<config::Resolver, std::vector<std::string>> job;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [this] { return stop || !jobs.empty(); });
        if (stop) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      std::vector<Lookup> out;
      for (auto& n : job.second) {
        out.emplace_back();
        out.back().name = std::move(n);
      }
      resolve_all(job.first, out);
      asio::post(io, [self = shared_from_this(), out = std::move(out)] { self->answered(out); });
    }
  }

  void shutdown() {
    timer.cancel();
    {
      std::lock_guard lock(mu);
      stop = true;
    }
    cv.notify_all();
    thread.join();
  }

  void lookup() {
    if (names.empty()) return;
    if (in_flight) {
      again = true;
      return;
    }
    in_flight = true;
    std::vector<std::string> list;
    for (const auto& [n, _] : names) list.push_back(n);
    {
      std::lock_guard lock(mu);
      jobs.emplace_back(conf, std::move(list));
    }
    cv.notify_one();
  }

  void answered(const std::vector<Lookup>& out) {
    in_flight = false;
    bool any = false;
    config::ResolvedNames next = current;
    for (const auto& l : out) {
      if (names.count(l.name) == 0) continue;  // no longer watched
      if (l.status != ARES_SUCCESS || l.addresses.empty()) {
        if (failing.insert(l.name).second) {
          log::Line(log::Level::warn, "upstream.resolve_failed")
              .str("name", l.name)
              .str("error", l.status == ARES_SUCCESS ? "no address" : ares_strerror(l.status))
              .unum("kept", next.count(l.name) ? next[l.name].size() : 0);
        }
        continue;
      }
      failing.erase(l.name);
      std::vector<std::string> now(l.addresses.begin(), l.addresses.end());
      auto& was = next[l.name];
      if (now == was) continue;
      std::string text;
      for (const auto& a : now) text += (text.empty() ? "" : ",") + a;
      log::Line(log::Level::info, "upstream.resolve")
          .str("name", l.name)
          .str("addresses", text)
          .unum("before", was.size());
      was = std::move(now);
      any = true;
    }
    // Kept only once used: a refused rebuild leaves `current` as it was, so
    // the same answer next time is news again.
    if (any && changed(next)) current = std::move(next);
    if (again) {
      again = false;
      lookup();
    }
  }

  void schedule() {
    if (names.empty()) return;
    config::Millis every = names.begin()->second;
    for (const auto& [_, i] : names) every = std::min(every, i);
    timer.expires_after(every);
    timer.async_wait([w = weak_from_this()](boost::system::error_code ec) {
      auto self = w.lock();
      if (ec || !self) return;
      self->lookup();
      self->schedule();
    });
  }
};

DnsWatch::DnsWatch(asio::io_context& io, std::function<bool(const config::ResolvedNames&)> changed)
    : impl_(std::make_shared<Impl>(io, std::move(changed))) {}

DnsWatch::~DnsWatch() { impl_->shutdown(); }

void DnsWatch::set(const config::Config& cfg) {
  Impl& i = *impl_;
  i.names = config::names_to_resolve(cfg);
  i.conf = cfg.resolver;
  for (auto it = i.current.begin(); it != i.current.end();)
    it = i.names.count(it->first) ? std::next(it) : i.current.erase(it);
  i.timer.cancel();
  i.lookup();
  i.schedule();
}

const config::ResolvedNames& DnsWatch::current() const { return impl_->current; }

}  // namespace weir::upstream
