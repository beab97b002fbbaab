#include "core/buffer_pool.h"

#include <gtest/gtest.h>

#include <cstring>

#ifdef WEIR_BUFFER_POOL_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace weir::core {
namespace {

// True if any byte of b[0..n) is poisoned; false when ASan is not in the build.
bool any_poisoned(const std::uint8_t* b, std::size_t n) {
#ifdef WEIR_BUFFER_POOL_ASAN
  return __asan_region_is_poisoned(const_cast<std::uint8_t*>(b), n) != nullptr;
#else
  (void)b, (void)n;
  return false;
#endif
}

bool first_and_last_poisoned(const std::uint8_t* b, std::size_t n) {
#ifdef WEIR_BUFFER_POOL_ASAN
  return __asan_address_is_poisoned(b) && __asan_address_is_poisoned(b + n - 1);
#else
  (void)b, (void)n;
  return false;
#endif
}

TEST(BufferPool, ReusesCachedBuffersAndCountsInUse) {
  BufferPool pool(256, 2);
  std::uint8_t* a = pool.acquire();
  std::uint8_t* b = pool.acquire();
  EXPECT_EQ(pool.in_use(), 2u);
  pool.release(a);
  EXPECT_EQ(pool.in_use(), 1u);
  EXPECT_EQ(pool.acquire(), a);  // the cached one comes back
  pool.release(a);
  pool.release(b);
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(BufferPool, CachedBufferIsPoisonedUntilReacquired) {
  if (!BufferPool::poisons) GTEST_SKIP() << "not an ASan build: nothing is poisoned";
  constexpr std::size_t n = 4096;
  BufferPool pool(n, 4);
  std::uint8_t* a = pool.acquire();
  EXPECT_FALSE(any_poisoned(a, n));
  std::memset(a, 0xab, n);
  pool.release(a);
  EXPECT_TRUE(first_and_last_poisoned(a, n));
  std::uint8_t* again = pool.acquire();
  ASSERT_EQ(again, a);
  EXPECT_FALSE(any_poisoned(again, n));
  std::memset(again, 0xcd, n);  // the whole buffer is usable again
  pool.release(again);
}

TEST(BufferPool, TouchingAReleasedBufferIsReported) {
  if (!BufferPool::poisons) GTEST_SKIP() << "not an ASan build: nothing is poisoned";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  BufferPool pool(1024, 1);
  std::uint8_t* a = pool.acquire();
  pool.release(a);
  volatile std::uint8_t* stale = a;
  EXPECT_DEATH(stale[100] = 1, "use-after-poison");
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WEIR_SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WEIR_SANITIZER_ALLOCATOR 1
#endif
#endif

// Out of memory on the data path is a null buffer (the session closes with
// 1011), never an exception thrown through the relay.
TEST(BufferPool, AcquireReturnsNullWhenMallocFails) {
#ifdef WEIR_SANITIZER_ALLOCATOR
  GTEST_SKIP() << "sanitizer allocators abort on impossible sizes instead of returning null";
#else
  BufferPool pool(std::size_t{1} << 62);
  EXPECT_EQ(pool.acquire(), nullptr);
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.acquire(), nullptr);
  EXPECT_EQ(pool.in_use(), 0u);
#endif
}

}  // namespace
}  // namespace weir::core
