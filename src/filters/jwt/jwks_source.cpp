#include "filters/jwt/jwks_source.h"

#include <algorithm>

#include "filters/jwt/jwks.h"
#include "filters/shared_sources.h"
#include "observability/log.h"

namespace weir::filters {

namespace {

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string share_key(const JwksSource::Options& o) {
  return o.url + '\n' + o.ca + '\n' + std::to_string(o.refresh.count()) + '\n' + std::to_string(o.timeout.count()) +
         '\n' + std::to_string(o.min_refetch.count()) + '\n' + std::to_string(o.max_bytes);
}

SharedSources<JwksSource>& sources() {
  static SharedSources<JwksSource> s;
  return s;
}

void count(obs::CounterId id) { count_off_worker(id); }

}  // namespace

std::shared_ptr<JwksSource> JwksSource::get(const Options& o, std::string* error) {
  return sources().get(share_key(o), [&]() -> std::shared_ptr<JwksSource> {
    auto url = fetch::parse_https_url(o.url, error);
    if (!url) return nullptr;
    auto trust = fetch::Trust::make(o.ca, error);
    if (!trust) return nullptr;
    std::shared_ptr<JwksSource> s(new JwksSource(o, std::move(*url), std::move(trust)));
    return s;
  });
}

JwksSource::JwksSource(Options o, fetch::Url url, std::shared_ptr<const fetch::Trust> trust)
    : o_(std::move(o)), url_(std::move(url)), trust_(std::move(trust)) {}

JwksSource::~JwksSource() = default;  // client_'s last holder stops the fetch thread

void JwksSource::start() {
  std::lock_guard lock(mu_);
  if (started_) return;
  started_ = true;
  client_ = fetch::Client::shared();
  begin_fetch_locked(steady_ms());
}

void JwksSource::add_counters(const Counters& c) {
  std::lock_guard lock(mu_);
  for (const auto& have : counters_)
    if (have.ok.at == c.ok.at) return;
  counters_.push_back(c);
}

std::shared_ptr<const JwksSource::Keys> JwksSource::keys() const {
  std::lock_guard lock(mu_);
  return keys_;
}

std::uint64_t JwksSource::fetches() const {
  std::lock_guard lock(mu_);
  return fetches_;
}

std::uint64_t JwksSource::wait_for_keys(Waiter done) {
  std::lock_guard lock(mu_);
  if (!fetching_) {
    const std::int64_t now = steady_ms();
    // Never fetched (a filter used before start(), e.g. in a test), or the
    // rate limit allows another: a stream of unknown kids costs the IdP at
    // most one fetch per min_refetch.
    const bool may = !started_ || fetches_ == 0 || now - last_start_ms_ >= o_.min_refetch.count();
    if (!may) return 0;
    if (!started_) {
      started_ = true;
      client_ = fetch::Client::shared();
    }
    begin_fetch_locked(now);
  }
  const std::uint64_t id = next_waiter_++;
  waiters_.emplace(id, std::move(done));
  return id;
}

void JwksSource::cancel(std::uint64_t id) {
  std::lock_guard lock(mu_);
  waiters_.erase(id);
}

void JwksSource::begin_fetch_locked(std::int64_t now_ms) {
  fetching_ = true;
  last_start_ms_ = now_ms;
  ++fetches_;
  fetch::Request req;
  req.url = url_;
  req.trust = trust_;
  req.timeout = o_.timeout;
  req.max_body_bytes = o_.max_bytes;
  req.headers = {{"Accept", "application/jwk-set+json, application/json"}};
  client_->fetch(std::move(req), [w = weak_from_this()](fetch::Response r) {
    if (auto s = w.lock()) s->finish(std::move(r));
  });
}

// On the fetch thread.
void JwksSource::finish(fetch::Response r) {
  enum class Result { ok, failed, invalid } result = Result::ok;
  std::string why = r.error;
  jose::JwksResult parsed;
  if (why.empty() && r.status != 200) {
    why = "HTTP status " + std::to_string(r.status);
  }
  if (!why.empty()) {
    result = Result::failed;
  } else {
    jose::JwksOptions po;
    po.max_bytes = o_.max_bytes;
    parsed = jose::parse_jwks(r.body, po);
    if (!parsed.error.empty()) {
      result = Result::invalid;
      why = parsed.error;
    } else if (parsed.keys.empty()) {
      result = Result::invalid;
      why = "JWKS has no usable signature key";
    }
  }

  std::lock_guard lock(mu_);
  fetching_ = false;
  std::chrono::milliseconds next = o_.min_refetch;
  if (result == Result::ok) {
    keys_ = std::make_shared<const Keys>(std::move(parsed.keys));
    if (failures_ > 0) {
      log::Line(log::Level::info, "jwks_recovered").str("url", url_.text).unum("failed_fetches", failures_);
    }
    failures_ = 0;
    // The IdP's max-age may shorten the cache life, never below min_refetch
    // (a max-age of 0 must not turn into a fetch loop) nor above refresh.
    next = o_.refresh;
    if (r.max_age_s) {
      const auto ma = std::chrono::milliseconds(std::min<std::int64_t>(*r.max_age_s, 86'400) * 1000);
      next = std::clamp(ma, std::min(o_.min_refetch, o_.refresh), o_.refresh);
    }
    log::Line(log::Level::info, "jwks_fetched")
        .str("url", url_.text)
        .unum("keys", keys_->size())
        .unum("skipped", parsed.skipped)
        .num("cache_s", next.count() / 1000);
  } else {
    // Once per failure streak: an IdP that is down for an hour is one warning,
    // and one info line when it is back.
    if (failures_++ == 0) {
      log::Line(log::Level::warn, "jwks_fetch_failed")
          .str("url", url_.text)
          .str("error", why)
          .boolean("stale_keys", keys_ != nullptr)
          .num("retry_s", next.count() / 1000);
    }
    next = std::max(next, std::chrono::milliseconds(1000));
  }
  for (const auto& c : counters_) count(result == Result::ok ? c.ok : result == Result::failed ? c.failed : c.invalid);
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& [id, w] : waiters) w();
  const std::uint64_t seq = ++timer_seq_;
  client_->after(next, [w = weak_from_this(), seq] {
    if (auto s = w.lock()) s->refresh_due(seq);
  });
}

void JwksSource::refresh_due(std::uint64_t seq) {
  std::lock_guard lock(mu_);
  if (seq != timer_seq_ || fetching_) return;  // a later fetch rescheduled it, or one runs
  begin_fetch_locked(steady_ms());
}

}  // namespace weir::filters
