"""The introspection filter (RFC 7662) on the real binary, against a real local introspection
endpoint (http.server on 127.0.0.1, port 0, plain HTTP; the HTTPS path is the JWKS fetch's,
tested in test_jwks.py). The endpoint checks Weir's client credentials (HTTP Basic, the
secret given to Weir through ${VAR}) and the form body, and answers from its table of opaque
tokens.

- an active token is accepted, its sub forwarded, the token stripped; a second handshake
  with it is answered from the cache (no second request);
- an inactive token is 401 with the Bearer challenge;
- a slow endpoint (past `timeout`), a stopped one, a 500 and a malformed answer are 503
  with Retry-After, never 401;
- concurrent handshakes with one token while its lookup is in flight share one request;
- the answer's exp closes the live session with 1008 "token expired";
- authz reads the introspected scope (403 without the right one);
- weir_introspection_requests_total counts by result (active, inactive, error, cached).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from weirlib import OP_TEXT, RawClient, build_request, free_port, http_exchange, make_config, new_key

CLIENT_ID = "weir"
CLIENT_SECRET = "s3cret:with%odd chars"


class IntrospectionServer:
    """POST /introspect: `self.tokens[token]` as the JSON answer ({"active": false} for an
    unknown token), after `self.delay` seconds; 401 unless Weir's credentials are right.
    `self.status`/`self.raw` force another answer."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict] = {}
        self.delay = 0.0
        self.status = 200
        self.raw: bytes | None = None
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                form = urllib.parse.parse_qs(body)
                want = "Basic " + base64.b64encode(
                    f"{urllib.parse.quote_plus(CLIENT_ID)}:{urllib.parse.quote_plus(CLIENT_SECRET)}".encode()).decode()
                with server.lock:
                    server.requests.append({"form": form, "auth": self.headers.get("Authorization"),
                                            "type": self.headers.get("Content-Type"), "path": self.path})
                    delay, status, raw = server.delay, server.status, server.raw
                    answer = server.tokens.get(form.get("token", [""])[0], {"active": False})
                if delay:
                    time.sleep(delay)
                if self.headers.get("Authorization") != want:
                    status, raw = 401, b'{"error":"invalid_client"}'
                doc = raw if raw is not None else json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(doc)))
                    self.end_headers()
                    self.wfile.write(doc)
                except OSError:
                    pass  # Weir gave up (timeout)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/introspect"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def idp():
    s = IntrospectionServer()
    yield s
    s.stop()


def start(weir, url: str, backend, authz=None, **opts):
    route = {"name": "chat", "upstreams": [backend.addr],
             "introspection": {"url": url, "client_id": CLIENT_ID, "client_secret": "${INTROSPECTION_SECRET}",
                               "token_type_hint": "access_token",
                               "claims_to_headers": [{"claim": "sub", "header": "X-User-Id"}], **opts}}
    if authz:
        route["authz"] = authz
    return weir.start(make_config([route]), env={"INTROSPECTION_SECRET": CLIENT_SECRET})


def handshake(w, token: str):
    return http_exchange(w.port, build_request("/", key=new_key(), headers=[("Authorization", f"Bearer {token}")]),
                         timeout=15)


def series(result: str) -> str:
    return f'weir_introspection_requests_total{{route="chat",result="{result}"}}'


def test_active_token_is_accepted_then_served_from_the_cache(weir, peers, idp):
    rb = peers.raw("echo")
    idp.tokens["opaque-alice"] = {"active": True, "sub": "alice", "scope": "chat", "exp": int(time.time()) + 300}
    w = start(weir, idp.url, rb)
    c = RawClient(w.port, "/", headers=[("Authorization", "Bearer opaque-alice")])
    try:
        conn = rb.wait_conn()
        assert conn.headers["x-user-id"] == "alice"
        assert "authorization" not in conn.headers
        c.send(OP_TEXT, b"hi")
        assert c.recv_message() == (OP_TEXT, b"hi")
        assert [x["user"] for x in w.admin_json("/admin/connections")["connections"]] == ["alice"]
    finally:
        c.close()
    assert idp.count() == 1
    req = idp.requests[0]
    assert req["form"] == {"token": ["opaque-alice"], "token_type_hint": ["access_token"]}
    assert req["type"] == "application/x-www-form-urlencoded"
    # The same token again: from the cache, the endpoint is not asked.
    r = handshake(w, "opaque-alice")
    assert r.status == 101, (r.status, r.body)
    assert idp.count() == 1
    m = w.metrics()
    assert m[series("active")] == 1
    assert m[series("cached")] == 1
    assert m[series("error")] == 0
    assert "opaque-alice" not in "\n".join(w.log.raw)  # never logged


def test_inactive_token_is_401_and_its_answer_cached_briefly(weir, peers, idp):
    rb = peers.raw("echo")
    w = start(weir, idp.url, rb, cache={"inactive_ttl": "10s"})
    for _ in range(2):
        r = handshake(w, "revoked-token")
        assert r.status == 401, (r.status, r.body)
        assert b"token inactive" in r.body
        assert 'error="invalid_token"' in r.header("www-authenticate")
    assert idp.count() == 1
    r = http_exchange(w.port, build_request("/", key=new_key()))
    assert r.status == 401 and b"token missing" in r.body
    m = w.metrics()
    assert m[series("inactive")] == 1
    assert m[series("cached")] == 1
    assert rb.conns == []


def test_a_slow_endpoint_is_503_with_retry_after_not_401(weir, peers, idp):
    rb = peers.raw("echo")
    idp.tokens["t"] = {"active": True, "sub": "bob"}
    idp.delay = 3.0
    w = start(weir, idp.url, rb, timeout="500ms", retry_after="7s")
    t0 = time.monotonic()
    r = handshake(w, "t")
    took = time.monotonic() - t0
    assert r.status == 503, (r.status, r.body)
    assert r.header("retry-after") == "7"
    assert b"timed out" in r.body
    assert took < 2.5, took
    ev = w.log.wait("introspection_failed", timeout=5)[0]
    assert ev["level"] == "warn" and "timed out" in ev["error"]
    # Failures are not cached: once the endpoint is quick again, the same token passes.
    idp.delay = 0
    r = handshake(w, "t")
    assert r.status == 101, (r.status, r.body)
    m = w.metrics()
    assert m[series("error")] == 1 and m[series("active")] == 1
    assert m['weir_handshakes_failed_total{route="chat",status="503",reason="introspection"}'] == 1
    w.log.wait("introspection_recovered", timeout=5)


def test_a_down_broken_or_misanswering_endpoint_is_503(weir, peers, idp):
    rb = peers.raw("echo")
    w = start(weir, f"http://127.0.0.1:{free_port()}/introspect", rb)
    r = handshake(w, "t")
    assert r.status == 503 and r.header("retry-after") == "5", (r.status, r.body)

    idp.tokens["t"] = {"active": True, "sub": "bob"}
    w2 = start(weir, idp.url, rb)
    idp.status = 500
    assert handshake(w2, "t").status == 503
    idp.status, idp.raw = 200, b'{"active":"yes"}'
    r = handshake(w2, "t")
    assert r.status == 503 and b"malformed" in r.body, (r.status, r.body)
    idp.raw = b"<html>oops</html>"
    assert handshake(w2, "t").status == 503
    assert w2.metrics()[series("error")] == 3
    assert rb.conns == []


def test_wrong_client_credentials_are_503_not_the_clients_fault(weir, peers, idp):
    rb = peers.raw("echo")
    idp.tokens["t"] = {"active": True, "sub": "bob"}
    w = weir.start(make_config([{"name": "chat", "upstreams": [rb.addr],
                                 "introspection": {"url": idp.url, "client_id": CLIENT_ID,
                                                   "client_secret": "wrong"}}]))
    r = handshake(w, "t")
    assert r.status == 503 and b"HTTP status 401" in r.body, (r.status, r.body)


def test_concurrent_handshakes_with_one_token_share_one_request(weir, peers, idp):
    rb = peers.raw("echo")
    idp.tokens["shared"] = {"active": True, "sub": "carol", "exp": int(time.time()) + 300}
    idp.delay = 1.0
    w = start(weir, idp.url, rb)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: handshake(w, "shared").status, range(8)))
    assert statuses == [101] * 8
    assert idp.count() == 1
    m = w.metrics()
    assert m[series("active")] == 1
    assert m[series("cached")] == 7


def test_exp_closes_the_live_session_with_1008(weir, peers, idp):
    rb = peers.raw("echo")
    exp = int(time.time()) + 2
    idp.tokens["short"] = {"active": True, "sub": "dave", "exp": exp}
    w = start(weir, idp.url, rb)
    c = RawClient(w.port, "/", headers=[("Authorization", "Bearer short")])
    try:
        c.send(OP_TEXT, b"still valid")
        assert c.recv_message() == (OP_TEXT, b"still valid")
        f = c.expect_close(timeout=6)
        closed_at = time.time()
        assert (f.close_code, f.close_reason) == (1008, "token expired")
        assert exp - 0.05 <= closed_at <= exp + 1.0, (exp, closed_at)
    finally:
        c.close()
    # Past exp the cached answer is gone and a fresh one says expired.
    r = handshake(w, "short")
    assert r.status == 401 and b"token expired" in r.body, (r.status, r.body)


def test_authz_reads_the_introspected_scope(weir, peers, idp):
    rb = peers.raw("echo")
    idp.tokens["reader"] = {"active": True, "sub": "erin", "scope": "chat:read"}
    idp.tokens["writer"] = {"active": True, "sub": "frank", "scope": "chat:read chat:write"}
    w = start(weir, idp.url, rb, authz=[{"claim": "scope", "all_of": ["chat:write"]}])
    r = handshake(w, "reader")
    assert r.status == 403 and b"lacks chat:write" in r.body, (r.status, r.body)
    assert handshake(w, "writer").status == 101
    assert w.metrics()['weir_authz_denied_total{route="chat"}'] == 1
