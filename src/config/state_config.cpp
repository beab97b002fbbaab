// The top-level `state` block: where the limits' counters live.
//
//   state:
//     backend: redis                      # local (default) | redis
//     url: redis://10.0.0.5:6379/0        # redis://host[:port][/db]
//     password: ${REDIS_PASSWORD}         # optional (AUTH)
//     on_redis_down: local                # local (default) | refuse
//     lease_ttl: 15s                      # a dead instance's slots expire after this
//     key_prefix: "weir:"                 # instances sharing limits use the same one

#include "config/loader.h"

namespace weir::config {

bool parse_redis_url(const std::string& s, SharedState& out, std::string& why) {
  static constexpr std::string_view scheme = "redis://";
  if (s.rfind(scheme, 0) != 0) {
    why = "must start with redis:// (redis://host[:port][/db])";
    return false;
  }
  std::string_view rest = std::string_view(s).substr(scheme.size());
  std::string_view db;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (rest.find('@') != std::string_view::npos) {
    why = "must not hold credentials (use state.password)";
    return false;
  }
  std::string_view host = rest, port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      why = "has an unclosed '[' in its host";
      return false;
    }
    host = rest.substr(1, close - 1);
    const std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        why = "has text after ']' that is not :port";
        return false;
      }
      port = after.substr(1);
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) {
    why = "has no host";
    return false;
  }
  out.host = std::string(host);
  out.port = 6379;
  out.db = 0;
  if (!port.empty() || rest.ends_with(':')) {
    const auto p = detail::parse_uint(port);
    if (!p || *p < 1 || *p > 65535) {
      why = "has an invalid port (1-65535)";
      return false;
    }
    out.port = static_cast<std::uint16_t>(*p);
  }
  if (!db.empty()) {
    const auto d = detail::parse_uint(db);
    if (!d || *d > 15) {
      why = "has an invalid database number (0-15 after the '/')";
      return false;
    }
    out.db = static_cast<unsigned>(*d);
  }
  return true;
}

namespace detail {

Resolver Loader::resolver(const Field& f) const {
  Resolver r;
  const Fields fs = fields(f, "in resolver", {"nameservers", "timeout"});
  if (const Field* v = fs.find("nameservers")) {
    for (const Field& item : list(*v, false)) {
      const std::string text = scalar(item, "an address and port, e.g. 10.0.0.2:53 or [fd00::2]:53");
      const auto up = parse_upstream(text);
      const bool literal = up && up->kind == Upstream::Kind::tcp && !up->tls && text.find("://") == std::string::npos &&
                           ip_literal(up->host);
      if (!literal)
        fail(item.mark, item.label + " must be an address literal and port, e.g. 10.0.0.2:53 or [fd00::2]:53, got " +
                            quote(text));
      r.nameservers.push_back(text);
    }
  }
  if (const Field* v = fs.find("timeout")) {
    r.timeout = duration(*v, false);
    if (r.timeout < Millis(100)) fail(v->mark, v->label + " must be at least 100ms");
  }
  return r;
}

SharedState Loader::shared_state(const Field& f) const {
  SharedState st;
  st.pos = pos(f.mark);
  const Fields fs = fields(f, "in state", {"backend", "url", "password", "on_redis_down", "lease_ttl", "key_prefix"});
  const Field* b = fs.find("backend");
  std::string backend = b ? scalar(*b, "local or redis") : "local";
  if (backend != "local" && backend != "redis") fail(b->mark, b->label + " must be local or redis, got " + quote(backend));
  if (backend == "local") {
    for (const auto& [k, v] : fs.entries)
      if (k != "backend") fail(v.key_mark, v.label + " is only for backend: redis");
    return st;
  }
  st.backend = SharedState::Backend::redis;
  const Field& url = require(fs, "url", "in state (backend: redis)");
  std::string why;
  const std::string text = scalar(url, "a URL such as redis://127.0.0.1:6379/0");
  if (!parse_redis_url(text, st, why)) fail(url.mark, url.label + " " + why + ", got " + quote(text));
  if (const Field* v = fs.find("password")) {
    st.password = scalar(*v, "a string (e.g. ${REDIS_PASSWORD})");
    if (st.password.empty()) fail(v->mark, v->label + " must not be empty (leave it out for no AUTH)");
  }
  if (const Field* v = fs.find("on_redis_down")) {
    const std::string mode = scalar(*v, "local or refuse");
    if (mode != "local" && mode != "refuse") fail(v->mark, v->label + " must be local or refuse, got " + quote(mode));
    st.refuse_when_down = mode == "refuse";
  }
  if (const Field* v = fs.find("lease_ttl")) {
    st.lease_ttl = duration(*v, false);
    if (st.lease_ttl < Millis(1'000) || st.lease_ttl > Millis(3'600'000))
      fail(v->mark, v->label + " must be between 1s and 1h");
  }
  if (const Field* v = fs.find("key_prefix")) {
    st.key_prefix = scalar(*v, "a string such as \"weir:\"");
    if (st.key_prefix.size() > 64) fail(v->mark, v->label + " must be at most 64 bytes");
  }
  return st;
}

}  // namespace detail
}  // namespace weir::config
