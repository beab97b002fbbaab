#pragma once
// The proxy's side of one worker: the config generation new connections get,
// the upstream picker, and the built-in echo upstream's port. Lives on its
// worker's thread; other threads change it only by posting to the worker.

#include <cstdint>
#include <memory>

#include "core/worker.h"
#include "proxy/runtime.h"
#include "upstream/group.h"
#include "upstream/prewarm.h"

namespace weir::proxy {

class WorkerGateway {
 public:
  WorkerGateway(core::Worker& worker, std::shared_ptr<const Runtime> runtime)
      : worker_(worker), runtime_(std::move(runtime)), picker_(worker.index()) {}
  WorkerGateway(const WorkerGateway&) = delete;
  WorkerGateway& operator=(const WorkerGateway&) = delete;

  core::Worker& worker() { return worker_; }
  const std::shared_ptr<const Runtime>& runtime() const { return runtime_; }
  upstream::Picker& picker() { return picker_; }
  // This worker's pre-warmed connections (null until start_prewarm()).
  upstream::PrewarmPools* prewarm() { return prewarm_.get(); }

  // Worker thread, once echo_port is known: the pools of the running
  // generation start filling.
  void start_prewarm() {
    prewarm_ = std::make_unique<upstream::PrewarmPools>(worker_, echo_port);
    prewarm_->set_groups(runtime_->groups, runtime_->group_tls);
  }

  // Worker thread: new connections get `rt` from now on; live sessions keep
  // theirs and are told (a session whose route is gone schedules its 1012).
  void set_runtime(std::shared_ptr<const Runtime> rt) {
    runtime_ = std::move(rt);
    worker_.buffers().resize(runtime_->buffer_bytes);
    if (prewarm_) prewarm_->set_groups(runtime_->groups, runtime_->group_tls);
    worker_.notify_reload();
  }

  // Port of the built-in echo upstream on 127.0.0.1 (0 when none).
  std::uint16_t echo_port = 0;

 private:
  core::Worker& worker_;
  std::shared_ptr<const Runtime> runtime_;
  upstream::Picker picker_;
  std::unique_ptr<upstream::PrewarmPools> prewarm_;
};

}  // namespace weir::proxy
