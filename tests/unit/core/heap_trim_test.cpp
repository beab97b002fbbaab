#include "core/heap_trim.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <vector>

namespace weir::core {
namespace {

TEST(TrimPolicy, TrimsOnceABurstHasPaused) {
  TrimPolicy p(1000, 60'000, 100);
  EXPECT_FALSE(p.observe(0, 0));
  EXPECT_FALSE(p.observe(500, 1000));   // burst under way
  EXPECT_FALSE(p.observe(900, 2000));   // still arriving
  EXPECT_FALSE(p.observe(900, 2500));   // quiet for 500 ms only
  EXPECT_TRUE(p.observe(900, 3000));    // quiet for 1 s: trim
  EXPECT_FALSE(p.observe(900, 4000));   // nothing new since
  EXPECT_FALSE(p.observe(950, 5000));
  EXPECT_FALSE(p.observe(950, 7000));   // quiet, but only 50 new: not worth it
}

TEST(TrimPolicy, ABurstBeforeTheFirstLookCounts) {
  TrimPolicy p(1000, 60'000, 100);
  EXPECT_FALSE(p.observe(300, 1000));  // the burst came before the first look
  EXPECT_TRUE(p.observe(300, 2000));
}

TEST(TrimPolicy, ASteadyTrickleIsTrimmedAfterMaxWait) {
  TrimPolicy p(1000, 10'000, 10);
  EXPECT_FALSE(p.observe(0, 0));
  std::uint64_t n = 0;
  int trims = 0;
  for (std::int64_t t = 500; t <= 25'000; t += 500) trims += p.observe(n += 5, t);  // never quiet
  EXPECT_EQ(trims, 2);  // at 10 s and 20 s
}

TEST(TrimPolicy, FewConnectionsNeverTrim) {
  TrimPolicy p(1000, 1000, 256);
  p.observe(0, 0);
  for (std::int64_t t = 1000; t < 100'000; t += 1000) EXPECT_FALSE(p.observe(static_cast<std::uint64_t>(t / 1000), t));
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WEIR_OWN_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WEIR_OWN_MALLOC 1
#endif
#endif

TEST(TrimHeap, RunsAndLeavesTheHeapUsable) {
#ifdef WEIR_OWN_MALLOC
  GTEST_SKIP() << "the sanitizer's allocator replaces glibc malloc";
#endif
  // Free scattered blocks between live ones, as a handshake burst does.
  std::vector<void*> live, freed;
  for (int i = 0; i < 2000; ++i) {
    live.push_back(std::malloc(700));
    freed.push_back(std::malloc(6000));
  }
  for (void* p : freed) std::free(p);
  EXPECT_TRUE(trim_heap());  // 12 MB of free pages between live blocks
  for (void* p : live) std::free(p);
  void* again = std::malloc(6000);
  ASSERT_NE(again, nullptr);
  std::free(again);
}

}  // namespace
}  // namespace weir::core
