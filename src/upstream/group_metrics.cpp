#include "upstream/group_metrics.h"

#include <string>
#include <unordered_map>

#include "upstream/group.h"
#include "upstream/prewarm.h"

namespace weir::upstream {

namespace {

struct Family {
  const char* name;
  const char* help;
  const char* key;
};

const Family& family(GroupEvent e) {
  static const Family kFamilies[] = {
      {"weir_upstream_retries_total", "Attempts moved to another member after this one failed (connect, TLS, upstream handshake)",
       "upstream"},
      {"weir_upstream_ejections_total", "Times passive health ejected the member (consecutive failures)", "upstream"},
      {"weir_upstream_rebalanced_total", "Sessions closed with 1012 to move them off a member above its share", "upstream"},
      {"weir_upstream_sticky_total",
       "Sticky cookie outcomes: hit (its member took the session), new (no cookie), forged (bad signature, "
       "ignored), moved (its member was unavailable: re-stuck)",
       "result"},
  };
  return kFamilies[static_cast<int>(e)];
}

std::uint32_t series(GroupEvent e, std::string_view group, std::string_view value) {
  const Family& f = family(e);
  return obs::Registry::global()
      .counter(f.name, f.help, {{"group", std::string(group)}, {f.key, std::string(value)}})
      .at;
}

}  // namespace

void count_group_event(obs::Cell* cells, GroupEvent e, std::string_view group, std::string_view value,
                       std::uint64_t n) {
  thread_local std::unordered_map<std::string, std::uint32_t> cache;
  std::string key = std::to_string(static_cast<int>(e)) + '\x1f' + std::string(group) + '\x1f' + std::string(value);
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() > 4096) cache.clear();
    it = cache.emplace(std::move(key), series(e, group, value)).first;
  }
  cells[it->second].add(n);
}

void declare_group_metrics(const Group& g) {
  for (std::size_t i = 0; i < g.size(); ++i) {
    series(GroupEvent::retry, g.label(), g.member(i).up.text);
    series(GroupEvent::ejection, g.label(), g.member(i).up.text);
    if (g.conf().rebalance.enabled) series(GroupEvent::rebalanced, g.label(), g.member(i).up.text);
  }
  if (g.conf().sticky_cookie)
    for (const char* r : {"hit", "new", "forged", "moved"}) series(GroupEvent::sticky, g.label(), r);
  declare_prewarm_metrics(g);
}

}  // namespace weir::upstream
