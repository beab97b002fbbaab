"""The jwt filter with keys from a JWKS URL, on the real binary, against a real local HTTPS
JWKS server (http.server + ssl on 127.0.0.1, port 0; its certificate from the test CA of
tlscerts.py, given to Weir as `ca:`). Tokens are RS256, minted here with python3-cryptography.

- the first handshake waits for the first fetch (the server answers it late) and is accepted;
- key rotation: the server switches from k1 to k2; a k2 token is accepted after the
  unknown-kid refetch, a k1 token is then refused;
- a storm of 50 handshakes with random kids costs the IdP at most two fetches;
- the server stops: the cached keys keep working (stale), one warning per failure streak;
- Weir started while the server is down: 503 with Retry-After, not 401;
- fetches are counted by result in weir_jwks_fetches_total.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tlscerts import certs  # noqa: F401  (fixture)
from weirlib import build_request, free_port, http_exchange, new_key


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def uint_b64(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class SigningKey:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict:
        pub = self.key.public_key().public_numbers()
        return {"kty": "RSA", "kid": self.kid, "use": "sig", "alg": "RS256", "n": uint_b64(pub.n),
                "e": uint_b64(pub.e)}

    def token(self, claims: dict | None = None, kid: str | None = None) -> str:
        head = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}).encode())
        body = b64url(json.dumps(claims or {"sub": "alice", "exp": int(time.time()) + 300}).encode())
        sig = self.key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{body}.{b64url(sig)}"


@pytest.fixture(scope="module")
def keys():
    return {"k1": SigningKey("k1"), "k2": SigningKey("k2")}


class JwksServer:
    """HTTPS on 127.0.0.1:0 serving `self.keys` as a JWKS at /jwks.json; counts requests."""

    def __init__(self, certs, keys: list[SigningKey]) -> None:
        self.keys = keys
        self.requests = 0
        self.first_delay = 0.0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                with server.lock:
                    server.requests += 1
                    n = server.requests
                    doc = json.dumps({"keys": [k.jwk() for k in server.keys]}).encode()
                if n == 1 and server.first_delay:
                    time.sleep(server.first_delay)
                if self.path != "/jwks.json":
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/jwk-set+json")
                self.send_header("Content-Length", str(len(doc)))
                self.end_headers()
                self.wfile.write(doc)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(certs.default.cert), str(certs.default.key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def set_keys(self, keys: list[SigningKey]) -> None:
        with self.lock:
            self.keys = keys

    def count(self) -> int:
        with self.lock:
            return self.requests

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_server(certs, keys):  # noqa: F811
    servers = []

    def start(*kids: str) -> JwksServer:
        s = JwksServer(certs, [keys[k] for k in kids])
        servers.append(s)
        return s

    yield start
    for s in servers:
        try:
            s.stop()
        except OSError:
            pass


def jwks_route(url: str, ca, backend, **opts) -> dict:
    return {"name": "chat", "upstreams": [backend.addr],
            "jwt": {"keys": [{"jwks": url, "ca": str(ca), **opts}], "algorithms": ["RS256"]}}


def handshake(w, token: str):
    return http_exchange(w.port, build_request("/", key=new_key(), headers=[("Authorization", f"Bearer {token}")]),
                         timeout=15)


def wait_for(what: str, cond, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_first_handshake_waits_for_the_fetch_then_rotation_is_picked_up(weir, peers, jwks_server, certs, keys):  # noqa: F811
    rb = peers.raw("echo")
    srv = jwks_server("k1")
    srv.first_delay = 1.0  # the first handshake arrives while the first fetch is under way
    w = weir.routes([jwks_route(srv.url, certs.ca, rb, min_refetch="1s")])
    r = handshake(w, keys["k1"].token())
    assert r.status == 101, (r.status, r.body)
    assert srv.count() == 1
    ev = w.log.wait("jwks_fetched", timeout=5)[0]
    assert ev["keys"] == 1 and ev["url"] == srv.url

    # Rotation: the IdP now signs with k2 only.
    srv.set_keys([keys["k2"]])
    time.sleep(1.2)  # past min_refetch, so an unknown kid may refetch
    r = handshake(w, keys["k2"].token())
    assert r.status == 101, (r.status, r.body)
    assert srv.count() == 2
    r = handshake(w, keys["k1"].token())
    assert r.status == 401 and b"unknown key id" in r.body
    assert srv.count() <= 3
    m = w.metrics()
    assert m['weir_jwks_fetches_total{route="chat",result="ok"}'] == srv.count()
    assert m['weir_jwks_fetches_total{route="chat",result="failed"}'] == 0
    assert m['weir_jwt_tokens_total{route="chat",result="accepted"}'] == 2


def test_a_storm_of_random_kids_costs_at_most_two_fetches(weir, peers, jwks_server, certs, keys):  # noqa: F811
    rb = peers.raw("echo")
    srv = jwks_server("k1")
    w = weir.routes([jwks_route(srv.url, certs.ca, rb, min_refetch="2s")])
    assert handshake(w, keys["k1"].token()).status == 101
    before = srv.count()
    assert before == 1
    time.sleep(2.2)  # the rate limit allows one refetch now
    tokens = [keys["k1"].token(kid=uuid.uuid4().hex) for _ in range(50)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(lambda t: handshake(w, t).status, tokens))
    assert statuses == [401] * 50
    assert 1 <= srv.count() - before <= 2, srv.count() - before
    # The good key still works, without another fetch.
    n = srv.count()
    assert handshake(w, keys["k1"].token()).status == 101
    assert srv.count() == n


def test_cached_keys_are_served_stale_while_the_idp_is_down(weir, peers, jwks_server, certs, keys):  # noqa: F811
    rb = peers.raw("echo")
    srv = jwks_server("k1")
    w = weir.routes([jwks_route(srv.url, certs.ca, rb, refresh="1s", min_refetch="1s", timeout="2s")])
    assert handshake(w, keys["k1"].token()).status == 101
    srv.stop()
    # Refreshes now fail; wait for two of them.
    wait_for("two failed refreshes",
             lambda: w.metrics().get('weir_jwks_fetches_total{route="chat",result="failed"}', 0) >= 2)
    r = handshake(w, keys["k1"].token())
    assert r.status == 101, (r.status, r.body)
    # An unknown kid is the token's fault while keys are cached: 401, not 503.
    r = handshake(w, keys["k2"].token())
    assert r.status == 401, (r.status, r.body)
    warnings = w.log.find("jwks_fetch_failed")
    assert len(warnings) == 1, warnings  # one per failure streak
    assert warnings[0]["level"] == "warn" and warnings[0]["stale_keys"] is True


def test_weir_started_while_the_idp_is_down_answers_503(weir, peers, certs, keys):  # noqa: F811
    rb = peers.raw("echo")
    url = f"https://127.0.0.1:{free_port()}/jwks.json"
    w = weir.routes([jwks_route(url, certs.ca, rb)])
    r = handshake(w, keys["k1"].token())
    assert r.status == 503, (r.status, r.body)
    assert b"signing keys unavailable" in r.body
    assert r.header("retry-after") == "30"
    # No token at all is still the client's fault.
    r = http_exchange(w.port, build_request("/", key=new_key()))
    assert r.status == 401
    m = w.metrics()
    assert m['weir_jwks_fetches_total{route="chat",result="failed"}'] >= 1
    assert m['weir_jwks_fetches_total{route="chat",result="ok"}'] == 0
    assert m['weir_handshakes_failed_total{route="chat",status="503",reason="jwt"}'] == 1
    assert rb.conns == [] or all(c.closed for c in rb.conns)


def test_a_server_certificate_from_another_ca_is_refused(weir, peers, jwks_server, certs, keys):  # noqa: F811
    rb = peers.raw("echo")
    srv = jwks_server("k1")
    w = weir.routes([jwks_route(srv.url, certs.ca2, rb)])
    r = handshake(w, keys["k1"].token())
    assert r.status == 503, (r.status, r.body)
    ev = w.log.wait("jwks_fetch_failed", timeout=5)[0]
    assert "certificate" in ev["error"], ev
