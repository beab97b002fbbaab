#include "filters/session_filters.h"

#include <algorithm>

namespace weir::filters {

Chain::Chain(const std::vector<std::shared_ptr<const config::FilterSettings>>& settings) {
  for (const auto& s : settings) {
    // Every FilterSettings comes from a registered filter type's parser,
    // which builds a Filter (filters/registry.cpp).
    auto f = std::dynamic_pointer_cast<const Filter>(s);
    if (!f) continue;
    hooks_ |= f->hooks();
    filters_.push_back(std::move(f));
  }
}

SessionFilters::SessionFilters(const Chain& chain) : hooks_(chain.hooks()) {
  entries_.reserve(chain.filters().size());
  for (const auto& f : chain.filters()) entries_.push_back({f.get(), f->instantiate()});
}

SessionFilters::~SessionFilters() { cancel(); }

void SessionFilters::cancel() {
  if (pending_) pending_->owner = nullptr;
  pending_.reset();
  done_ = nullptr;
  ctx_ = nullptr;
}

HandshakeVerdict SessionFilters::run_handshake(HandshakeContext& ctx, Done done) {
  ctx_ = &ctx;
  done_ = std::move(done);
  return run_from(0);
}

HandshakeVerdict SessionFilters::run_from(std::size_t index) {
  for (std::size_t i = index; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    if ((e.filter->hooks() & kHandshake) == 0) continue;
    pending_ = std::make_shared<PendingRun>(PendingRun{this, i});
    ctx_->resume = Resume(pending_);
    in_hook_ = true;
    HandshakeVerdict v = e.instance->on_handshake(*ctx_);
    in_hook_ = false;
    ctx_->resume = Resume();
    if (v.kind == HandshakeVerdict::Kind::pending) {
      if (!early_) return v;  // pending_ stays for the resume
      v = std::move(*early_);  // it answered already, from inside the hook
      early_.reset();
      if (v.kind == HandshakeVerdict::Kind::pending) v = HandshakeVerdict::refuse(500, "filter resumed without a verdict");
    }
    pending_->owner = nullptr;
    pending_.reset();
    if (v.kind == HandshakeVerdict::Kind::refuse) {
      decided_by_ = e.filter->name();
      if (v.status < 400 || v.status > 599) v.status = 500;  // a filter bug must not send a 1xx-3xx
      return v;
    }
  }
  return {};
}

void SessionFilters::resume(std::size_t index, HandshakeVerdict v) {
  pending_->owner = nullptr;
  pending_.reset();
  if (v.kind == HandshakeVerdict::Kind::pending) v = HandshakeVerdict::refuse(500, "filter resumed without a verdict");
  if (v.kind == HandshakeVerdict::Kind::refuse) {
    decided_by_ = entries_[index].filter->name();
    if (v.status < 400 || v.status > 599) v.status = 500;
  } else {
    v = run_from(index + 1);
    if (v.kind == HandshakeVerdict::Kind::pending) return;  // another filter waits now
  }
  Done done = std::move(done_);
  done_ = nullptr;
  ctx_ = nullptr;
  if (done) done(std::move(v));
}

void Resume::operator()(HandshakeVerdict v) const {
  if (!alive()) return;
  SessionFilters* owner = run_->owner;
  if (owner->in_hook_) {
    run_->owner = nullptr;  // once
    owner->early_ = std::make_unique<HandshakeVerdict>(std::move(v));
    return;
  }
  owner->resume(run_->index, std::move(v));
}

bool Resume::alive() const { return run_ && run_->owner != nullptr; }

FrameVerdict SessionFilters::on_frame_header(Direction d, const ws::FrameHeader& h, std::int64_t now_ms) {
  FrameVerdict out;
  for (Entry& e : entries_) {
    if ((e.filter->hooks() & kFrames) == 0) continue;
    const FrameVerdict v = e.instance->on_frame_header(d, h, now_ms);
    switch (v.kind) {
      case FrameVerdict::Kind::forward:
        break;
      case FrameVerdict::Kind::pause:
        if (out.kind == FrameVerdict::Kind::forward || out.kind == FrameVerdict::Kind::pause) {
          out.kind = FrameVerdict::Kind::pause;
          out.until_ms = std::max(out.until_ms, v.until_ms);
        }
        break;
      case FrameVerdict::Kind::drop:
      case FrameVerdict::Kind::close:
        decided_by_ = e.filter->name();
        return v;
    }
  }
  return out;
}

MessageVerdict SessionFilters::on_message(Direction d, Message& m) {
  MessageVerdict out;
  for (Entry& e : entries_) {
    if ((e.filter->hooks() & kMessages) == 0) continue;
    MessageVerdict v = e.instance->on_message(d, m);
    if (v.kind == MessageVerdict::Kind::drop || v.kind == MessageVerdict::Kind::close) {
      decided_by_ = e.filter->name();
      return v;
    }
    if (v.kind == MessageVerdict::Kind::replace) out.kind = MessageVerdict::Kind::replace;
  }
  return out;
}

}  // namespace weir::filters
