#pragma once
// Consistent hashing for the `hash` policy: a Maglev lookup table
// (Eisenbud et al., NSDI 2016). Chosen over a hash ring because a lookup is
// one array read (a ring is a binary search over ~100 points per member),
// the spread over members is within a few percent of their weights, and
// adding or removing one member of N remaps about 1/N of the keys (a little
// more than a ring's minimum, measured in test_balancer). The table depends
// only on the members' names and weights, so every Weir instance with the
// same group builds the same table and sends a key to the same member.

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace weir::upstream {

// A stable 64-bit hash (FNV-1a with a final mix): the same on every
// instance and every run, unlike std::hash.
std::uint64_t stable_hash(std::string_view s, std::uint64_t seed = 0);
// A mixing step for rehashing a key (attempt n of a lookup).
std::uint64_t remix(std::uint64_t h, std::uint64_t n);

class Maglev {
 public:
  struct Entry {
    std::string_view name;  // the member's identity (its text)
    std::uint32_t weight;   // >= 1
  };
  // size: a prime; by default the smallest of 65537 and 655373 that is at
  // least 100 entries per member.
  explicit Maglev(const std::vector<Entry>& members, std::size_t size = 0);
  // The member (index into `members`) for a key's hash.
  std::uint32_t lookup(std::uint64_t hash) const { return table_[hash % table_.size()]; }
  std::size_t size() const { return table_.size(); }

 private:
  std::vector<std::uint32_t> table_;
};

}  // namespace weir::upstream
