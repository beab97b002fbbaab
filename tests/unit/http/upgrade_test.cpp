#include "http/upgrade.h"

#include <gtest/gtest.h>

#include <string>

#include "http/head.h"

namespace weir::http {
namespace {

const std::string kKey = "dGhlIHNhbXBsZSBub25jZQ==";

std::string request(const std::string& extra = "", const std::string& method = "GET",
                    const std::string& version = "HTTP/1.1") {
  return method + " /chat?x=1 " + version + "\r\nHost: example.com\r\nUpgrade: websocket\r\n"
         "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + kKey +
         "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n";
}

Refusal check(const std::string& raw) {
  Head h;
  EXPECT_EQ(parse_request_head(raw, 8192, h), ParseStatus::complete) << raw;
  return validate_upgrade_request(h);
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  s.replace(s.find(from), from.size(), to);
  return s;
}

TEST(Upgrade, AcceptKeyFromRfcExample) {
  EXPECT_EQ(compute_accept(kKey), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(Upgrade, ValidRequestIsAccepted) {
  EXPECT_FALSE(check(request()));
  // Header names and the upgrade token are case-insensitive.
  EXPECT_FALSE(check(replace(replace(request(), "Upgrade: websocket", "upgrade: WebSocket"),
                             "Connection:", "CONNECTION:")));
}

TEST(Upgrade, EachRejection) {
  EXPECT_EQ(check(request("", "POST")).status, 405u);
  EXPECT_EQ(check(request("", "GET", "HTTP/1.0")).status, 400u);
  EXPECT_EQ(check(replace(request(), "Upgrade: websocket\r\n", "")).status, 426u);
  EXPECT_EQ(check(replace(request(), "Upgrade: websocket", "Upgrade: h2c")).status, 426u);
  EXPECT_EQ(check(replace(request(), "Connection: keep-alive, Upgrade", "Connection: keep-alive")).status, 426u);
  EXPECT_EQ(check(replace(request(), "Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8")).status, 426u);
  EXPECT_EQ(check(replace(request(), "Sec-WebSocket-Version: 13\r\n", "")).status, 426u);
  EXPECT_EQ(check(replace(request(), kKey, "c2hvcnQ=")).status, 400u);       // 5 bytes
  EXPECT_EQ(check(replace(request(), kKey, "not base64 at all!!!!!==")).status, 400u);
  EXPECT_EQ(check(replace(request(), "Sec-WebSocket-Key: " + kKey + "\r\n", "")).status, 400u);
  EXPECT_EQ(check(request("Sec-WebSocket-Key: " + kKey + "\r\n")).status, 400u);  // twice
  EXPECT_EQ(check(replace(request(), "Host: example.com\r\n", "")).status, 400u);
  EXPECT_EQ(check(request("Content-Length: 5\r\n")).status, 400u);
}

TEST(Upgrade, ErrorResponseCarriesReasonAndVersionHeader) {
  const std::string r = error_response(426, "WebSocket upgrade required");
  EXPECT_EQ(r.rfind("HTTP/1.1 426 Upgrade Required\r\n", 0), 0u);
  EXPECT_NE(r.find("Sec-WebSocket-Version: 13\r\n"), std::string::npos);
  EXPECT_NE(r.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(r.substr(r.size() - 27), "WebSocket upgrade required\n");
}

// Filters' fields: on a refusal (Retry-After, WWW-Authenticate), on the
// request to the upstream, on the 101, each before the blank line.
TEST(Upgrade, ExtraFieldsFromFilters) {
  const Field refusal[] = {{"Retry-After", "3"}, {"WWW-Authenticate", "Bearer realm=\"w\""}};
  const std::string r = error_response(429, "slow down", refusal);
  EXPECT_EQ(r.rfind("HTTP/1.1 429 Too Many Requests\r\n", 0), 0u);
  const auto body = r.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  EXPECT_LT(r.find("Retry-After: 3\r\n"), body);
  EXPECT_LT(r.find("WWW-Authenticate: Bearer realm=\"w\"\r\n"), body);

  Head h;
  const std::string raw = request();
  ASSERT_EQ(parse_request_head(raw, 8192, h), ParseStatus::complete);
  const Field up[] = {{"X-User", "alice"}};
  const std::string out = build_upstream_request(h, {"192.0.2.7", "ws"}, up);
  EXPECT_NE(out.find("X-User: alice\r\n"), std::string::npos);
  EXPECT_EQ(out.substr(out.size() - 4), "\r\n\r\n");

  const std::string ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
  Head resp;
  ASSERT_EQ(parse_response_head(ok, 8192, resp), ParseStatus::complete);
  const Field down[] = {{"X-Session", "42"}};
  const std::string sw = build_switching_response(h, resp, down);
  EXPECT_NE(sw.find("X-Session: 42\r\n"), std::string::npos);
  EXPECT_EQ(sw.substr(sw.size() - 4), "\r\n\r\n");
}

TEST(Head, ParseStatuses) {
  Head h;
  const std::string full = request();
  EXPECT_EQ(parse_request_head(full.substr(0, full.size() - 2), 8192, h), ParseStatus::need_more);
  EXPECT_EQ(parse_request_head(full, 64, h), ParseStatus::too_large);
  EXPECT_EQ(parse_request_head("GARBAGE\r\n\r\n", 8192, h), ParseStatus::bad);
  const std::string with_frame = full + "\x81\x80";  // views point into this
  EXPECT_EQ(parse_request_head(with_frame, 8192, h), ParseStatus::complete);
  EXPECT_EQ(h.size, full.size());  // early frame bytes are not part of the head
  EXPECT_EQ(h.target, "/chat?x=1");
  EXPECT_EQ(h.get("HOST"), "example.com");
}

TEST(Upgrade, UpstreamRequestForwardsEndToEndHeadersOnly) {
  Head h;
  const std::string raw = request(
      "Cookie: a=b\r\nAuthorization: Bearer t\r\nX-Secret-Hop: 1\r\nKeep-Alive: 5\r\n"
      "X-Forwarded-For: 10.0.0.1\r\nSec-WebSocket-Protocol: chat, superchat\r\n");
  const std::string raw2 = replace(raw, "Connection: keep-alive, Upgrade", "Connection: Upgrade, X-Secret-Hop");
  ASSERT_EQ(parse_request_head(raw2, 8192, h), ParseStatus::complete);
  const std::string out = build_upstream_request(h, {"192.0.2.7", "ws"});
  EXPECT_EQ(out.rfind("GET /chat?x=1 HTTP/1.1\r\n", 0), 0u);
  EXPECT_NE(out.find("Cookie: a=b\r\n"), std::string::npos);
  EXPECT_NE(out.find("Authorization: Bearer t\r\n"), std::string::npos);
  EXPECT_NE(out.find("Sec-WebSocket-Key: " + kKey + "\r\n"), std::string::npos);
  EXPECT_NE(out.find("Sec-WebSocket-Protocol: chat, superchat\r\n"), std::string::npos);
  EXPECT_EQ(out.find("X-Secret-Hop"), std::string::npos);
  EXPECT_EQ(out.find("Keep-Alive"), std::string::npos);
  EXPECT_NE(out.find("X-Forwarded-For: 10.0.0.1, 192.0.2.7\r\n"), std::string::npos);
  EXPECT_NE(out.find("X-Forwarded-Proto: ws\r\n"), std::string::npos);
  EXPECT_NE(out.find("X-Forwarded-Host: example.com\r\n"), std::string::npos);
  EXPECT_NE(out.find("Forwarded: for=192.0.2.7;proto=ws;host=\"example.com\"\r\n"), std::string::npos);
  EXPECT_NE(out.find("Upgrade: websocket\r\nConnection: Upgrade\r\n"), std::string::npos);
  EXPECT_EQ(out.substr(out.size() - 4), "\r\n\r\n");
}

Head parse_resp(const std::string& raw) {
  Head h;
  EXPECT_EQ(parse_response_head(raw, 8192, h), ParseStatus::complete) << raw;
  return h;
}

TEST(Upgrade, UpstreamResponseChecks) {
  Head req;
  const std::string raw = request("Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
  ASSERT_EQ(parse_request_head(raw, 8192, req), ParseStatus::complete);
  const std::string ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
  {
    std::string s = ok + "Sec-WebSocket-Protocol: b\r\nSec-WebSocket-Extensions: permessage-deflate\r\nSet-Cookie: s=1\r\n\r\n";
    Head resp = parse_resp(s);
    auto v = check_upstream_response(resp, req);
    EXPECT_FALSE(v.refusal);
    EXPECT_EQ(v.allowed_rsv, 0x4);
    const std::string out = build_switching_response(req, resp);
    EXPECT_NE(out.find("Sec-WebSocket-Protocol: b\r\n"), std::string::npos);
    EXPECT_NE(out.find("Sec-WebSocket-Extensions: permessage-deflate\r\n"), std::string::npos);
    EXPECT_NE(out.find("Set-Cookie: s=1\r\n"), std::string::npos);
    EXPECT_NE(out.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos);
  }
  {
    const std::string s = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    auto v = check_upstream_response(parse_resp(s), req);
    EXPECT_EQ(v.refusal.status, 502u);
    EXPECT_NE(v.refusal.reason.find("403 Forbidden"), std::string::npos);
  }
  EXPECT_EQ(check_upstream_response(parse_resp(ok + "Sec-WebSocket-Protocol: c\r\n\r\n"), req).refusal.status, 502u);
  EXPECT_EQ(check_upstream_response(parse_resp(ok + "Sec-WebSocket-Extensions: x-unknown\r\n\r\n"), req).refusal.status,
            502u);
  EXPECT_EQ(check_upstream_response(
                parse_resp(replace(ok, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=") + "\r\n"), req)
                .refusal.status,
            502u);
  EXPECT_EQ(check_upstream_response(parse_resp(replace(ok, "Upgrade: websocket\r\n", "") + "\r\n"), req).refusal.status,
            502u);
}

TEST(Head, TokenLists) {
  EXPECT_TRUE(has_token("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(has_token(" upgrade ", "upgrade"));
  EXPECT_FALSE(has_token("upgrades", "upgrade"));
  EXPECT_FALSE(has_token("", "upgrade"));
}

}  // namespace
}  // namespace weir::http
