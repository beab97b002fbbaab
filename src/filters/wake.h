#pragma once
// For a filter instance that waits for an answer from another thread (a
// JWKS fetch, an introspection request): the answer is posted to the
// session's worker and reaches the instance only if it still exists then.
// Own one as a member: `WakeToken<MyInstance> wake_{this};`.

#include <memory>

#include "core/worker.h"

namespace weir::filters {

template <class Instance>
class WakeToken {
 public:
  explicit WakeToken(Instance* self) : alive_(std::make_shared<Instance*>(self)) {}
  // Worker thread: a wake still queued finds null and does nothing.
  ~WakeToken() { *alive_ = nullptr; }
  WakeToken(const WakeToken&) = delete;
  WakeToken& operator=(const WakeToken&) = delete;

  // A callable for any thread: posts call(instance, args...) to `worker`.
  template <class F>
  auto on(core::Worker& worker, F call) const {
    return [w = &worker, alive = alive_, call](const auto&... args) {
      w->post([alive, call, args...] {
        if (*alive != nullptr) call(**alive, args...);
      });
    };
  }

 private:
  std::shared_ptr<Instance*> alive_;
};

}  // namespace weir::filters
