#include "filters/bearer_token.h"

namespace weir::filters {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

using Found = FoundToken;

std::optional<Found> from_header(const http::Head& req) {
  const std::string_view v = trim(req.get("authorization"));
  if (v.size() < 7 || !http::iequals(v.substr(0, 7), "bearer ")) return std::nullopt;
  Found f{std::string(trim(v.substr(7))), {{"Authorization", ""}}, {}};
  if (f.token.empty()) return std::nullopt;
  return f;
}

// Browsers cannot set headers on a WebSocket: the token rides as one of the
// offered subprotocols ("bearer.<token>"); the others are offered on.
std::optional<Found> from_subprotocol(const http::Head& req, const std::string& prefix) {
  std::optional<Found> f;
  std::string rest;
  for (const auto& field : req.fields) {
    if (!http::iequals(field.name, "sec-websocket-protocol")) continue;
    std::string_view list = field.value;
    while (!list.empty()) {
      const auto comma = list.find(',');
      const std::string_view item = trim(list.substr(0, comma));
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      if (!f && item.size() > prefix.size() && item.substr(0, prefix.size()) == prefix) {
        f = Found{std::string(item.substr(prefix.size())), {}, {}};
      } else if (!item.empty()) {
        rest += (rest.empty() ? "" : ", ") + std::string(item);
      }
    }
  }
  if (f) f->rewrite.push_back({"Sec-WebSocket-Protocol", rest});
  return f;
}

std::optional<Found> from_query(const http::Head& req, const std::string& param) {
  const std::string_view target = req.target;
  const auto q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  std::optional<Found> f;
  std::string kept;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = part.find('=');
    if (!f && eq != std::string_view::npos && part.substr(0, eq) == param) {
      f = Found{std::string(part.substr(eq + 1)), {}, {}};
    } else if (!part.empty()) {
      kept += (kept.empty() ? "" : "&") + std::string(part);
    }
  }
  if (!f || f->token.empty()) return std::nullopt;
  f->target = std::string(target.substr(0, q)) + (kept.empty() ? "" : "?" + kept);
  return f;
}

std::optional<Found> from_cookie(const http::Head& req, const std::string& name) {
  std::optional<Found> f;
  std::string kept;
  for (const auto& field : req.fields) {
    if (!http::iequals(field.name, "cookie")) continue;
    std::string_view list = field.value;
    while (!list.empty()) {
      const auto semi = list.find(';');
      const std::string_view item = trim(list.substr(0, semi));
      list = semi == std::string_view::npos ? std::string_view() : list.substr(semi + 1);
      const auto eq = item.find('=');
      if (!f && eq != std::string_view::npos && item.substr(0, eq) == name) {
        f = Found{std::string(item.substr(eq + 1)), {}, {}};
      } else if (!item.empty()) {
        kept += (kept.empty() ? "" : "; ") + std::string(item);
      }
    }
  }
  if (!f || f->token.empty()) return std::nullopt;
  f->rewrite.push_back({"Cookie", kept});
  return f;
}

}  // namespace

void BearerSources::parse(const config::FilterReader& v) {
  if (auto f = v.find("from")) {
    from.clear();
    for (const auto& item : f->items(true)) {
      const std::string c = item.choice({"header", "subprotocol", "query", "cookie"});
      from.push_back(c == "header"        ? Source::header
                     : c == "subprotocol" ? Source::subprotocol
                     : c == "query"       ? Source::query
                                          : Source::cookie);
    }
    if (from.empty()) f->fail(f->label() + " must name at least one place");
  }
  if (auto p = v.find("subprotocol_prefix")) subprotocol_prefix = p->string();
  if (auto q = v.find("query_param")) query_param = q->string();
  if (auto c = v.find("cookie")) cookie = c->string();
}

std::optional<FoundToken> find_bearer_token(const http::Head& req, const BearerSources& s) {
  for (BearerSources::Source src : s.from) {
    std::optional<Found> found;
    switch (src) {
      case BearerSources::Source::header: found = from_header(req); break;
      case BearerSources::Source::subprotocol: found = from_subprotocol(req, s.subprotocol_prefix); break;
      case BearerSources::Source::query: found = from_query(req, s.query_param); break;
      case BearerSources::Source::cookie: found = from_cookie(req, s.cookie); break;
    }
    if (found) return found;
  }
  return std::nullopt;
}

void strip_bearer_token(HandshakeContext& ctx, FoundToken& found) {
  for (auto& h : found.rewrite) ctx.rewrite_headers.push_back(std::move(h));
  if (!found.target.empty()) ctx.rewrite_target = std::move(found.target);
}

HandshakeVerdict bearer_unauthorized(std::string why) {
  std::string challenge = "Bearer realm=\"weir\"";
  if (why != "token missing") challenge += ", error=\"invalid_token\", error_description=\"" + why + "\"";
  return HandshakeVerdict::refuse(401, std::move(why), {{"WWW-Authenticate", std::move(challenge)}});
}


}  // namespace weir::filters
