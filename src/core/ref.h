#pragma once
// Single-threaded intrusive reference counting. A session and everything that
// refers to it live on one worker thread (design: a connection belongs to one
// loop), so the count needs no atomics, unlike std::shared_ptr.

#include <cassert>
#include <cstdint>
#include <utility>

namespace weir::core {

class RefCounted {
 public:
  RefCounted() = default;
  RefCounted(const RefCounted&) = delete;
  RefCounted& operator=(const RefCounted&) = delete;

 protected:
  virtual ~RefCounted() = default;

 private:
  template <class T>
  friend class Ref;
  std::uint32_t refs_ = 0;
};

template <class T>
class Ref {
 public:
  Ref() = default;
  explicit Ref(T* p) : p_(p) { if (p_) ++p_->refs_; }
  Ref(const Ref& o) : p_(o.p_) { if (p_) ++p_->refs_; }
  Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Ref& operator=(Ref o) noexcept { std::swap(p_, o.p_); return *this; }
  ~Ref() { reset(); }
  void reset() {
    if (p_ && --p_->refs_ == 0) delete static_cast<RefCounted*>(p_);  // virtual, protected
    p_ = nullptr;
  }
  T* operator->() const { return p_; }
  T& operator*() const { return *p_; }
  T* get() const { return p_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  T* p_ = nullptr;
};

}  // namespace weir::core
