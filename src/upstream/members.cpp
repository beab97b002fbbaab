#include "upstream/members.h"

#include <map>
#include <mutex>

#include "core/clock.h"
#include "upstream/sticky.h"

namespace weir::upstream {

MemberState::MemberState(std::string group_label, std::string member_text, std::int64_t now_ms)
    : group(std::move(group_label)), text(std::move(member_text)), id(member_id(group, text)), up_since_ms(now_ms) {}

std::int64_t MemberState::live() const {
  std::int64_t n = 0;
  for (const auto& s : slots_) n += s.n.load(std::memory_order_relaxed);
  return n;
}

std::shared_ptr<MemberState> member_state(const std::string& key, const std::string& label,
                                          const std::string& text) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<MemberState>> states;
  std::lock_guard lock(mu);
  for (auto it = states.begin(); it != states.end();) it = it->second.expired() ? states.erase(it) : std::next(it);
  auto& slot = states[key + '\n' + text];
  if (auto s = slot.lock()) return s;
  auto s = std::make_shared<MemberState>(label, text, core::coarse_now_ms());
  slot = s;
  return s;
}

}  // namespace weir::upstream
