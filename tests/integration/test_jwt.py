"""The jwt filter on the real binary: tokens minted here (HS256, RS256 with a key made by the
openssl CLI) from the Authorization header or a Sec-WebSocket-Protocol entry, 401s with the
Bearer challenge, the token stripped before the backend and the subject forwarded as a
header, the user shown by the admin API, and a live session closed with 1008 when its
token expires."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time

from weirlib import OP_TEXT, RawClient, build_request, http_exchange, new_key

SECRET = "0123456789abcdef0123456789abcdef"


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hs256(claims: dict, secret: str = SECRET) -> str:
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def route(**jwt):
    return {"name": "chat", "jwt": {"keys": [{"secret": SECRET}], "issuer": "https://idp", **jwt}}


def test_header_token_is_checked_stripped_and_its_subject_forwarded(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{**route(claims_to_headers=[{"claim": "sub", "header": "X-User-Id"}]), "upstreams": [rb.addr]}])
    tok = hs256({"sub": "alice", "iss": "https://idp", "exp": int(time.time()) + 60})
    c = RawClient(w.port, "/", headers=[("Authorization", f"Bearer {tok}"), ("X-User-Id", "mallory")])
    try:
        conn = rb.wait_conn()
        assert conn.headers["x-user-id"] == "alice"  # the client's own X-User-Id is replaced
        assert "authorization" not in conn.headers
        c.send(OP_TEXT, b"hi")
        assert c.recv_message() == (OP_TEXT, b"hi")
        listed = w.admin_json("/admin/connections")["connections"]
        assert [x["user"] for x in listed] == ["alice"]
    finally:
        c.close()
    ev = w.log.wait("conn.close", timeout=5)[0]
    assert ev["user"] == "alice"
    assert tok not in "\n".join(w.log.raw)  # never logged


def test_refusals_are_401_with_the_bearer_challenge(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{**route(), "upstreams": [rb.addr]}])
    r = http_exchange(w.port, build_request("/", key=new_key()))
    assert r.status == 401 and r.header("www-authenticate") == 'Bearer realm="weir"'
    bad = hs256({"iss": "https://idp"}, secret="x" * 32)
    r = http_exchange(w.port, build_request("/", key=new_key(), headers=[("Authorization", f"Bearer {bad}")]))
    assert r.status == 401
    assert r.header("www-authenticate") == \
        'Bearer realm="weir", error="invalid_token", error_description="bad signature"'
    old = hs256({"iss": "https://idp", "exp": int(time.time()) - 120})
    r = http_exchange(w.port, build_request("/", key=new_key(), headers=[("Authorization", f"Bearer {old}")]))
    assert r.status == 401 and b"token expired" in r.body
    m = w.metrics()
    assert m['weir_jwt_tokens_total{route="chat",result="rejected"}'] == 3
    assert m['weir_handshakes_failed_total{route="chat",status="401",reason="jwt"}'] == 3
    assert rb.conns == [] or all(c.closed for c in rb.conns)  # the backend never saw them


def test_browser_style_token_in_the_subprotocol_offer(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{**route(**{"from": ["subprotocol"]}), "upstreams": [rb.addr]}])
    tok = hs256({"sub": "bob", "iss": "https://idp"})
    c = RawClient(w.port, "/", headers=[("Sec-WebSocket-Protocol", f"bearer.{tok}, chat.v1")])
    try:
        conn = rb.wait_conn()
        assert conn.headers["sec-websocket-protocol"] == "chat.v1"  # the token entry is gone
    finally:
        c.close()


def test_rs256_with_a_pem_key(weir, peers, tmp_path):
    rb = peers.raw("echo")
    key = tmp_path / "k.pem"
    pub = tmp_path / "pub.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key)],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True)
    head = b64url(json.dumps({"alg": "RS256", "kid": "k1"}).encode())
    body = b64url(json.dumps({"sub": "carol", "iss": "https://idp"}).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)], input=f"{head}.{body}".encode(),
                         check=True, capture_output=True).stdout
    tok = f"{head}.{body}.{b64url(sig)}"
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr],
                      "jwt": {"keys": [{"pem": "${file:" + str(pub) + "}", "kid": "k1"}], "issuer": "https://idp",
                              "algorithms": ["RS256"]}}])
    c = RawClient(w.port, "/", headers=[("Authorization", f"Bearer {tok}")])
    c.close()
    # The same token with its header claiming HS256 (signed with the public key as a secret) is refused.
    head2 = b64url(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    sig2 = hmac.new(pub.read_bytes(), f"{head2}.{body}".encode(), hashlib.sha256).digest()
    r = http_exchange(w.port, build_request("/", key=new_key(),
                                            headers=[("Authorization", f"Bearer {head2}.{body}.{b64url(sig2)}")]))
    assert r.status == 401 and b"algorithm not allowed: HS256" in r.body


def test_a_live_session_is_closed_with_1008_when_its_token_expires(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{**route(clock_skew="0"), "upstreams": [rb.addr]}])
    exp = int(time.time()) + 2
    c = RawClient(w.port, "/", headers=[("Authorization", f"Bearer {hs256({'iss': 'https://idp', 'exp': exp})}")])
    try:
        c.send(OP_TEXT, b"still valid")
        assert c.recv_message() == (OP_TEXT, b"still valid")
        f = c.expect_close(timeout=6)
        closed_at = time.time()
        assert (f.close_code, f.close_reason) == (1008, "token expired")
        assert exp - 0.05 <= closed_at <= exp + 1.0, (exp, closed_at)
    finally:
        c.close()
