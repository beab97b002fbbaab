#pragma once
// Per-worker pool of fixed-size relay buffers. A session takes one only while
// bytes are in flight and gives it back when drained, so idle connections hold
// no buffer (design: memory and backpressure). Not thread-safe: one per worker.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

// Under ASan a cached free buffer is poisoned, so a session that touches its
// buffer after release() is reported (use-after-poison) instead of silently
// scribbling on memory the pool hands to the next session.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEIR_BUFFER_POOL_ASAN 1
#endif
#endif
#if !defined(WEIR_BUFFER_POOL_ASAN) && defined(__SANITIZE_ADDRESS__)
#define WEIR_BUFFER_POOL_ASAN 1
#endif
#ifdef WEIR_BUFFER_POOL_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace weir::core {

class BufferPool {
 public:
  // size: bytes per buffer; keep: how many free buffers to keep cached.
  // keep: free buffers cached for reuse; a worker rarely has more than a few
  // in flight (they are held only while a write is blocked), so a small cache
  // avoids malloc churn without pinning megabytes.
  explicit BufferPool(std::size_t size = 64 * 1024, std::size_t keep = 8) : size_(size), keep_(keep) {}
  ~BufferPool() {
    for (auto* b : free_) {
      unpoison(b);
      std::free(b);
    }
  }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  std::size_t buffer_size() const { return size_; }
  std::size_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  // From any thread (metrics): the counts as last published by the owner.
  std::size_t in_use_relaxed() const { return in_use_.load(std::memory_order_relaxed); }
  std::size_t cached_relaxed() const { return cached_.load(std::memory_order_relaxed); }

  // A buffer of at least `bytes` (its real size in *got). Buffers of
  // buffer_size() come from the cache; a larger request (a session of an
  // older config generation that asked for more) gets its own allocation.
  // nullptr when out of memory: the caller fails that session, not the loop.
  std::uint8_t* acquire(std::size_t bytes, std::size_t* got) {
    const std::size_t n = bytes > size_ ? bytes : size_;
    if (n == size_ && !free_.empty()) {
      auto* b = free_.back();
      free_.pop_back();
      unpoison(b);
      bump(in_use_, 1);
      cached_.store(free_.size(), std::memory_order_relaxed);
      *got = n;
      return b;
    }
    void* p = std::malloc(n);
    if (!p) return nullptr;
    bump(in_use_, 1);
    *got = n;
    return static_cast<std::uint8_t*>(p);
  }
  std::uint8_t* acquire() {
    std::size_t got;
    return acquire(size_, &got);
  }
  // b: from acquire(), with the size it gave.
  void release(std::uint8_t* b, std::size_t bytes) {
    bump(in_use_, -1);
    if (bytes == size_ && free_.size() < keep_) {
      poison(b);
      free_.push_back(b);
      cached_.store(free_.size(), std::memory_order_relaxed);
    } else {
      std::free(b);
    }
  }
  void release(std::uint8_t* b) { release(b, size_); }

  // A new config generation may need another size: the cache is emptied and
  // new buffers have `size` bytes; buffers out now come back with their own.
  void resize(std::size_t size) {
    if (size == size_) return;
    for (auto* b : free_) {
      unpoison(b);
      std::free(b);
    }
    free_.clear();
    cached_.store(0, std::memory_order_relaxed);
    size_ = size;
  }

  // Whether this build poisons cached buffers (tests skip their checks if not).
#ifdef WEIR_BUFFER_POOL_ASAN
  static constexpr bool poisons = true;
#else
  static constexpr bool poisons = false;
#endif

 private:
  // Only the owning worker writes: a load and a store, no locked instruction.
  static void bump(std::atomic<std::size_t>& v, long d) {
    v.store(v.load(std::memory_order_relaxed) + static_cast<std::size_t>(d), std::memory_order_relaxed);
  }
#ifdef WEIR_BUFFER_POOL_ASAN
  void poison(std::uint8_t* b) const { __asan_poison_memory_region(b, size_); }
  void unpoison(std::uint8_t* b) const { __asan_unpoison_memory_region(b, size_); }
#else
  void poison(std::uint8_t*) const {}
  void unpoison(std::uint8_t*) const {}
#endif

  std::size_t size_;
  std::size_t keep_;
  std::atomic<std::size_t> in_use_{0};
  std::atomic<std::size_t> cached_{0};
  std::vector<std::uint8_t*> free_;
};

}  // namespace weir::core
