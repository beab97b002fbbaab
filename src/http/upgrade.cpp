#include "http/upgrade.h"

#include <openssl/evp.h>

#include <fmt/format.h>

#include <memory>

namespace weir::http {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

bool decodes_to_16_bytes(std::string_view key) {
  if (key.size() != 24 || key[22] != '=' || key[23] != '=') return false;
  unsigned char out[24];
  const int n = EVP_DecodeBlock(out, reinterpret_cast<const unsigned char*>(key.data()), 24);
  return n == 18;  // EVP_DecodeBlock counts the padding bytes as data
}

// Names of extensions listed in a Sec-WebSocket-Extensions value.
template <class F>
void for_each_extension(std::string_view list, F&& f) {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    std::size_t semi = item.find(';');
    std::string_view name = item.substr(0, semi);
    while (!name.empty() && (name.front() == ' ' || name.front() == '\t')) name.remove_prefix(1);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
    if (!name.empty()) f(name);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

}  // namespace

Refusal validate_upgrade_request(const Head& req) {
  if (req.method != "GET") return {405, "method must be GET for a WebSocket upgrade"};
  if (req.version < 11) return {400, "HTTP/1.1 required for a WebSocket upgrade"};
  if (req.has_body) return {400, "an upgrade request has no body"};
  if (req.count("host") != 1) return {400, "exactly one Host header required"};
  if (!req.has_token("upgrade", "websocket") || !req.has_token("connection", "upgrade"))
    return {426, "WebSocket upgrade required"};
  if (req.count("sec-websocket-version") != 1 || req.get("sec-websocket-version") != "13")
    return {426, "unsupported Sec-WebSocket-Version (13 required)"};
  if (req.count("sec-websocket-key") != 1 || !decodes_to_16_bytes(req.get("sec-websocket-key")))
    return {400, "invalid Sec-WebSocket-Key"};
  return {};
}

std::string compute_accept(std::string_view key) {
  // Fetched once: OpenSSL 3's implicit fetch per call costs more than the hash.
  static EVP_MD* const sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  thread_local const std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> holder(EVP_MD_CTX_new(),
                                                                            EVP_MD_CTX_free);
  EVP_MD_CTX* const ctx = holder.get();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestInit_ex(ctx, sha1, nullptr);
  EVP_DigestUpdate(ctx, key.data(), key.size());
  EVP_DigestUpdate(ctx, kGuid.data(), kGuid.size());
  EVP_DigestFinal_ex(ctx, digest, &len);
  unsigned char out[32];
  const int n = EVP_EncodeBlock(out, digest, static_cast<int>(len));
  return std::string(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
}

std::string_view status_text(unsigned status) {
  switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
  }
}

std::string error_response(unsigned status, std::string_view reason, std::span<const Field> extra) {
  std::string out = fmt::format("HTTP/1.1 {} {}\r\n", status, status_text(status));
  for (const auto& f : extra) append_field(out, f.name, f.value);
  if (status == 426) out += "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
  if (status == 405) out += "Allow: GET\r\n";
  out += fmt::format("Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                     reason.size() + 1);
  out.append(reason).push_back('\n');
  return out;
}

bool is_hop_by_hop(std::string_view name, const Head& message) {
  static constexpr std::string_view kHop[] = {"connection", "keep-alive", "proxy-connection",
                                              "proxy-authenticate", "proxy-authorization", "te",
                                              "trailer", "transfer-encoding", "upgrade"};
  for (auto h : kHop)
    if (iequals(name, h)) return true;
  return message.has_token("connection", name);
}

std::string build_upstream_request(const Head& req, const ForwardInfo& info, std::span<const Field> extra) {
  std::string out;
  out.reserve(req.size + 256);
  out.append("GET ").append(req.target).append(" HTTP/1.1\r\n");
  std::string xff;
  std::string forwarded;
  for (const auto& f : req.fields) {
    if (is_hop_by_hop(f.name, req)) continue;
    if (iequals(f.name, "x-forwarded-for")) {
      if (!xff.empty()) xff += ", ";
      xff.append(f.value);
      continue;
    }
    if (iequals(f.name, "forwarded")) {
      if (!forwarded.empty()) forwarded += ", ";
      forwarded.append(f.value);
      continue;
    }
    if (iequals(f.name, "x-forwarded-proto") || iequals(f.name, "x-forwarded-host")) continue;
    append_field(out, f.name, f.value);
  }
  out.append("Upgrade: websocket\r\nConnection: Upgrade\r\n");
  if (!xff.empty()) xff += ", ";
  xff.append(info.client_ip);
  append_field(out, "X-Forwarded-For", xff);
  append_field(out, "X-Forwarded-Proto", info.proto);
  const std::string_view host = req.get("host");
  append_field(out, "X-Forwarded-Host", host);
  if (!forwarded.empty()) forwarded += ", ";
  const bool v6 = info.client_ip.find(':') != std::string_view::npos;
  if (v6) forwarded += fmt::format("for=\"[{}]\";proto={};host=\"{}\"", info.client_ip, info.proto, host);
  else forwarded += fmt::format("for={};proto={};host=\"{}\"", info.client_ip, info.proto, host);
  append_field(out, "Forwarded", forwarded);
  for (const auto& f : extra) append_field(out, f.name, f.value);
  out.append("\r\n");
  return out;
}

UpstreamVerdict check_upstream_response(const Head& resp, const Head& client_req) {
  UpstreamVerdict v;
  if (resp.status != 101) {
    v.refusal = {502, fmt::format("upstream refused the upgrade: {} {}", resp.status, resp.reason)};
    return v;
  }
  if (!resp.has_token("upgrade", "websocket") || !resp.has_token("connection", "upgrade")) {
    v.refusal = {502, "upstream sent an invalid upgrade response"};
    return v;
  }
  if (resp.get("sec-websocket-accept") != compute_accept(client_req.get("sec-websocket-key"))) {
    v.refusal = {502, "upstream Sec-WebSocket-Accept does not match"};
    return v;
  }
  const std::string_view proto = resp.get("sec-websocket-protocol");
  if (!proto.empty()) {
    bool offered = false;
    for (const auto& f : client_req.fields)
      if (iequals(f.name, "sec-websocket-protocol") && has_token(f.value, proto)) offered = true;
    if (!offered) {
      v.refusal = {502, "upstream chose a subprotocol the client did not offer"};
      return v;
    }
  }
  bool ok = true;
  for (const auto& f : resp.fields) {
    if (!iequals(f.name, "sec-websocket-extensions")) continue;
    for_each_extension(f.value, [&](std::string_view name) {
      bool offered = false;
      for (const auto& c : client_req.fields)
        if (iequals(c.name, "sec-websocket-extensions"))
          for_each_extension(c.value, [&](std::string_view n) { offered = offered || iequals(n, name); });
      if (!offered) ok = false;
      // permessage-deflate uses RSV1; an extension we do not know may use any.
      v.allowed_rsv |= iequals(name, "permessage-deflate") ? 0x4 : 0x7;
    });
  }
  if (!ok) v.refusal = {502, "upstream chose an extension the client did not offer"};
  return v;
}

std::string build_switching_response(const Head& client_req, const Head& upstream_resp,
                                     std::span<const Field> extra, bool own_extensions) {
  std::string out = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  append_field(out, "Sec-WebSocket-Accept", compute_accept(client_req.get("sec-websocket-key")));
  for (const auto& f : upstream_resp.fields) {
    if (is_hop_by_hop(f.name, upstream_resp) || iequals(f.name, "sec-websocket-accept") ||
        iequals(f.name, "content-length") || (own_extensions && iequals(f.name, "sec-websocket-extensions")))
      continue;
    append_field(out, f.name, f.value);
  }
  for (const auto& f : extra) append_field(out, f.name, f.value);
  out.append("\r\n");
  return out;
}

}  // namespace weir::http
