#pragma once
// Per-worker pool of fixed-size relay buffers. A session takes one only while
// bytes are in flight and gives it back when drained, so idle connections hold
// no buffer (design: memory and backpressure). Not thread-safe: one per worker.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

namespace weir::core {

class BufferPool {
 public:
  // size: bytes per buffer; keep: how many free buffers to keep cached.
  // keep: free buffers cached for reuse; a worker rarely has more than a few
  // in flight (they are held only while a write is blocked), so a small cache
  // avoids malloc churn without pinning megabytes.
  explicit BufferPool(std::size_t size = 64 * 1024, std::size_t keep = 8) : size_(size), keep_(keep) {}
  ~BufferPool() {
    for (auto* b : free_) std::free(b);
  }
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  std::size_t buffer_size() const { return size_; }
  std::size_t in_use() const { return in_use_; }

  std::uint8_t* acquire() {
    ++in_use_;
    if (!free_.empty()) {
      auto* b = free_.back();
      free_.pop_back();
      return b;
    }
    void* p = std::malloc(size_);
    if (!p) throw std::bad_alloc();
    return static_cast<std::uint8_t*>(p);
  }
  void release(std::uint8_t* b) {
    --in_use_;
    if (free_.size() < keep_) free_.push_back(b);
    else std::free(b);
  }

 private:
  std::size_t size_;
  std::size_t keep_;
  std::size_t in_use_ = 0;
  std::vector<std::uint8_t*> free_;
};

}  // namespace weir::core
