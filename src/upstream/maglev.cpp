#include "upstream/maglev.h"

#include <algorithm>

namespace weir::upstream {

std::uint64_t stable_hash(std::string_view s, std::uint64_t seed) {
  std::uint64_t h = 0xcbf29ce484222325ull ^ (seed * 0x9e3779b97f4a7c15ull);
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return remix(h, 0);
}

std::uint64_t remix(std::uint64_t h, std::uint64_t n) {
  // splitmix64's finalizer over h + n golden-ratio steps.
  std::uint64_t z = h + (n + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Maglev::Maglev(const std::vector<Entry>& members, std::size_t size) {
  if (size == 0) size = members.size() * 100 <= 65537 ? 65537 : 655373;
  table_.assign(size, 0);
  if (members.empty()) return;
  const std::size_t n = members.size();
  std::vector<std::uint64_t> offset(n), skip(n), next(n, 0);
  std::uint32_t max_weight = 1;
  for (std::size_t i = 0; i < n; ++i) {
    offset[i] = stable_hash(members[i].name, 1) % size;
    skip[i] = stable_hash(members[i].name, 2) % (size - 1) + 1;
    max_weight = std::max(max_weight, members[i].weight);
  }
  // Weighted: each round, a member's credit grows by its weight and it
  // claims a slot per max_weight of credit, so slots follow the weights.
  std::vector<std::uint64_t> credit(n, 0);
  std::vector<bool> taken(size, false);
  std::size_t filled = 0;
  while (filled < size) {
    for (std::size_t i = 0; i < n && filled < size; ++i) {
      credit[i] += std::max<std::uint32_t>(members[i].weight, 1);
      while (credit[i] >= max_weight && filled < size) {
        credit[i] -= max_weight;
        std::uint64_t c = (offset[i] + next[i] * skip[i]) % size;
        while (taken[c]) {
          ++next[i];
          c = (offset[i] + next[i] * skip[i]) % size;
        }
        taken[c] = true;
        table_[c] = static_cast<std::uint32_t>(i);
        ++next[i];
        ++filled;
      }
    }
  }
}

}  // namespace weir::upstream
