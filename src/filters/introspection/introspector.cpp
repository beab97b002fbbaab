#include "filters/introspection/introspector.h"

#include <openssl/evp.h>

#include "core/clock.h"
#include "filters/shared_sources.h"
#include "http/base64.h"
#include "observability/log.h"

namespace weir::filters {

namespace {

std::string share_key(const Introspector::Options& o) {
  std::string k;
  for (const std::string* s : {&o.url, &o.ca, &o.client_id, &o.client_secret, &o.token_type_hint}) k += *s + '\n';
  for (std::int64_t n : {std::int64_t(o.timeout.count()), std::int64_t(o.max_bytes), std::int64_t(o.cache.max_entries),
                         o.cache.ttl_ms, o.cache.inactive_ttl_ms})
    k += std::to_string(n) + '\n';
  return k;
}

SharedSources<Introspector>& sources() {
  static SharedSources<Introspector> s;
  return s;
}

void count(obs::CounterId id) { count_off_worker(id); }

// The cache and in-flight key: the token's SHA-256, so the tables hold
// neither bearer secrets nor more than 32 bytes per token.
std::string digest(std::string_view token) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(token.data(), token.size(), md, &n, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(md), n);
}

}  // namespace

std::string form_urlencode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '*') {
      out += static_cast<char>(c);
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::shared_ptr<Introspector> Introspector::get(const Options& o, std::string* error) {
  return sources().get(share_key(o), [&]() -> std::shared_ptr<Introspector> {
    auto url = fetch::parse_url(o.url, /*allow_http=*/true, error);
    if (!url) return nullptr;
    std::shared_ptr<const fetch::Trust> trust;
    if (url->tls) {
      trust = fetch::Trust::make(o.ca, error);
      if (!trust) return nullptr;
    } else if (!o.ca.empty()) {
      if (error) *error = "'ca' is for an https:// URL";
      return nullptr;
    }
    std::shared_ptr<Introspector> s(new Introspector(o, std::move(*url), std::move(trust)));
    return s;
  });
}

Introspector::Introspector(Options o, fetch::Url url, std::shared_ptr<const fetch::Trust> trust)
    : o_(std::move(o)),
      url_(std::move(url)),
      trust_(std::move(trust)),
      // RFC 6749 2.3.1: id and secret are form-encoded, then joined for Basic.
      authorization_(o_.client_id.empty()
                         ? std::string()
                         : "Basic " + http::base64_encode(form_urlencode(o_.client_id) + ":" + form_urlencode(o_.client_secret))),
      cache_(o_.cache) {}

Introspector::~Introspector() = default;  // client_'s last holder stops the fetch thread

fetch::Request Introspector::request_for(std::string_view token) const {
  fetch::Request req;
  req.url = url_;
  req.trust = trust_;
  req.method = "POST";
  req.timeout = o_.timeout;
  req.max_body_bytes = o_.max_bytes;
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded"}, {"Accept", "application/json"}};
  if (!authorization_.empty()) req.headers.emplace_back("Authorization", authorization_);
  req.body = "token=" + form_urlencode(token);
  if (!o_.token_type_hint.empty()) req.body += "&token_type_hint=" + form_urlencode(o_.token_type_hint);
  return req;
}

Introspector::Lookup Introspector::lookup(std::string_view token, std::int64_t now_ms, const Counters& c,
                                          Waiter done) {
  std::string key = digest(token);
  std::lock_guard lock(mu_);
  Lookup out;
  if ((out.cached = cache_.find(key, now_ms))) return out;
  out.wait_id = next_id_++;
  auto [it, fresh] = in_flight_.try_emplace(key);
  it->second.push_back({out.wait_id, std::move(done)});
  out.joined = !fresh;
  if (fresh) {
    if (!client_) client_ = fetch::Client::shared();
    ++requests_;
    client_->fetch(request_for(token), [w = weak_from_this(), key, c](fetch::Response r) {
      if (auto s = w.lock()) s->finish(key, c, std::move(r));
    });
  }
  return out;
}

void Introspector::cancel(std::uint64_t wait_id) {
  std::lock_guard lock(mu_);
  for (auto& [key, waiting] : in_flight_)
    std::erase_if(waiting, [wait_id](const Waiting& w) { return w.id == wait_id; });
}

// On the fetch thread.
void Introspector::finish(const std::string& key, const Counters& c, fetch::Response r) {
  Outcome out;
  if (!r.error.empty()) {
    out.error = "introspection endpoint: " + r.error;
  } else if (r.status != 200) {
    out.error = "introspection endpoint: HTTP status " + std::to_string(r.status);
  } else {
    std::string why;
    auto parsed = parse_introspection_response(r.body, &why);
    if (!parsed)
      out.error = "introspection endpoint: malformed response: " + why;
    else
      out.result = std::make_shared<const Introspected>(std::move(*parsed));
  }
  count(!out.result ? c.error : out.result->active ? c.active : c.inactive);

  const std::int64_t now_ms = core::wall_now_ms();
  std::lock_guard lock(mu_);
  if (out.result) {
    cache_.put(key, out.result, now_ms);
    if (failures_ > 0)
      log::Line(log::Level::info, "introspection_recovered").str("url", url_.text).unum("failed_requests", failures_);
    failures_ = 0;
  } else if (failures_++ == 0) {
    // Once per failure streak: an endpoint down for an hour is one warning.
    log::Line(log::Level::warn, "introspection_failed").str("url", url_.text).str("error", out.error);
  }
  auto node = in_flight_.extract(key);
  if (node.empty()) return;
  for (auto& w : node.mapped()) w.done(out);
}

std::uint64_t Introspector::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

std::size_t Introspector::cached() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

}  // namespace weir::filters
