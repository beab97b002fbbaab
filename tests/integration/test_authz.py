"""Access control after authentication, on the real binary with real peers: roles and scopes
(authz) from the token's claims, revocation through the admin API (live sessions closed with
1008, new handshakes refused), in-band token refresh on a live session, duplicate claims,
origin wildcards with the missing-Origin policy, and authz on the mTLS client certificate's
subject CN and SANs (certificates from tlscerts.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import ssl
import time

from aiohelp import connect, run
from tlscerts import certs, client_context  # noqa: F401  (fixture)
from weirlib import OP_TEXT, RawClient, build_request, http_exchange, make_config, new_key, read_response

SECRET = "0123456789abcdef0123456789abcdef"


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hs256(claims: dict | str) -> str:
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url((claims if isinstance(claims, str) else json.dumps(claims)).encode())
    sig = hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def bearer(claims: dict | str) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {hs256(claims)}")]


def jwt(**extra) -> dict:
    return {"keys": [{"secret": SECRET}], **extra}


def status_of(port: int, headers) -> tuple[int, str, bytes]:
    r = http_exchange(port, build_request("/", key=new_key(), headers=headers))
    return r.status, r.header("www-authenticate") or "", r.body


def echo_once(c: RawClient, text: bytes) -> None:
    c.send(OP_TEXT, text)
    assert c.recv_message() == (OP_TEXT, text)


def test_roles_and_scopes_from_claims(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "ops", "upstreams": [rb.addr], "jwt": jwt(),
                      "authz": [{"claim": "realm_access.roles", "any_of": ["admin", "support"]},
                                {"claim": "scope", "all_of": ["chat:read", "chat:write"]}]}])
    good = {"sub": "alice", "realm_access": {"roles": ["support"]}, "scope": "chat:write chat:read"}
    # A real client library, with the token in a header.
    async def talk():
        async with connect(w.url("/"), extra_headers=bearer(good)) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
    run(talk())

    status, challenge, body = status_of(w.port, bearer({**good, "realm_access": {"roles": ["user"]}}))
    assert status == 403 and b"has none of admin, support" in body
    assert challenge == 'Bearer realm="weir", error="insufficient_scope"'
    status, _, body = status_of(w.port, bearer({**good, "scope": "chat:read"}))
    assert status == 403 and b"lacks chat:write" in body
    # No token at all is the jwt filter's 401, before authz is asked.
    assert status_of(w.port, [])[0] == 401
    m = w.metrics()
    assert m['weir_authz_denied_total{route="ops"}'] == 2
    assert m['weir_handshakes_failed_total{route="ops",status="403",reason="authz"}'] == 2


def test_duplicate_claims_are_refused(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr], "jwt": jwt()}])
    # A verifier that keeps the first "sub" and a backend that keeps the last would disagree.
    status, challenge, body = status_of(w.port, bearer('{"sub": "alice", "sub": "admin"}'))
    assert status == 401 and b"duplicate claim 'sub'" in body
    assert 'error="invalid_token"' in challenge


def test_revocation_closes_live_sessions_and_refuses_new_ones(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr], "jwt": jwt()}])
    alice = [RawClient(w.port, "/", headers=bearer({"sub": "alice", "jti": f"a{i}"})) for i in range(2)]
    bob = RawClient(w.port, "/", headers=bearer({"sub": "bob", "jti": "b1"}))
    try:
        for c in alice + [bob]:
            echo_once(c, b"before")
        listed = w.admin_json("/admin/connections")["connections"]
        assert sorted((x["user"], x["token_id"]) for x in listed) == [("alice", "a0"), ("alice", "a1"), ("bob", "b1")]

        status, _, body = w.admin("/admin/revoke", method="POST", body=json.dumps({"sub": "alice", "ttl": "1m"}).encode())
        assert status == 202, body
        assert json.loads(body) == {"sub": "alice", "ttl_seconds": 60, "sessions_closed": 2, "shared": False}
        for c in alice:
            f = c.expect_close(timeout=3)
            assert (f.close_code, f.close_reason) == (1008, "token revoked")
        echo_once(bob, b"bob is still here")
        status, _, body = status_of(w.port, bearer({"sub": "alice", "jti": "a2"}))
        assert status == 401 and b"token revoked" in body
        revs = w.admin_json("/admin/revoke")["revocations"]
        assert len(revs) == 1 and revs[0]["sub"] == "alice" and 0 < revs[0]["expires_in_seconds"] <= 60

        # By token id: only that token.
        status, _, body = w.admin("/admin/revoke", method="POST", body=b'{"jti": "b1"}')
        assert status == 202 and json.loads(body)["sessions_closed"] == 1
        assert bob.expect_close(timeout=3).close_code == 1008
        assert status_of(w.port, bearer({"sub": "bob", "jti": "b2"}))[0] == 101
    finally:
        for c in alice + [bob]:
            c.close()
    # Bad requests say why.
    for bad, why in [(b"{}", b"name a sub or a jti"), (b'{"sub": "x", "ttl": "forever"}', b"ttl must be"),
                     (b'{"user": "x"}', b"unknown field"), (b"not json", b"JSON object")]:
        status, _, body = w.admin("/admin/revoke", method="POST", body=bad)
        assert status == 400 and why in body, (bad, status, body)
    deadline = time.time() + 5
    while len(w.log.find("conn.close", reason="token revoked")) < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert len(w.log.find("conn.close", reason="token revoked")) == 3


def test_in_band_refresh_extends_a_live_session(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr],
                      "jwt": jwt(clock_skew="0", refresh={"type": "auth", "token_field": "token"})}])
    exp = int(time.time()) + 2
    c = RawClient(w.port, "/", headers=bearer({"sub": "alice", "exp": exp}))
    try:
        echo_once(c, b"before")
        fresh = hs256({"sub": "alice", "exp": int(time.time()) + 60})
        c.send(OP_TEXT, json.dumps({"type": "auth", "token": fresh}).encode())  # Weir's, not the backend's
        c.send(OP_TEXT, b'{"type": "chat", "token": "not a refresh"}')
        assert c.recv_message() == (OP_TEXT, b'{"type": "chat", "token": "not a refresh"}')
        time.sleep(max(0.0, exp + 1.2 - time.time()))  # past the first token's exp
        echo_once(c, b"after the first token expired")
    finally:
        c.close()
    m = w.metrics()
    assert m['weir_jwt_tokens_total{route="chat",result="refreshed"}'] == 1
    assert m.get('weir_messages_dropped_total{route="chat",direction="client_to_upstream"}', 0) == 0
    # The backend saw the three application messages and never the refresh.
    texts = [f.payload for f in rb.conns[0].frames if f.opcode == OP_TEXT]
    assert texts == [b"before", b'{"type": "chat", "token": "not a refresh"}', b"after the first token expired"]


def test_in_band_refresh_for_another_subject_or_a_bad_token_closes(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr], "jwt": jwt(refresh={})}])
    for token, reason in [(hs256({"sub": "mallory"}), "token refresh refused: another subject"),
                          ("garbage", "token refresh refused: malformed token"),
                          (hs256({"sub": "alice", "exp": 1}), "token refresh refused: token expired")]:
        c = RawClient(w.port, "/", headers=bearer({"sub": "alice"}))
        try:
            echo_once(c, b"hi")
            c.send(OP_TEXT, json.dumps({"type": "auth", "token": token}).encode())
            f = c.expect_close(timeout=3)
            assert f.close_code == 1008 and f.close_reason.startswith(reason), (f.close_code, f.close_reason)
        finally:
            c.close()


def test_origin_wildcards_and_requests_without_an_origin(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([
        {"name": "browsers", "match": {"path": "/b"}, "upstreams": [rb.addr], "origins": ["https://*.example.com"]},
        {"name": "mixed", "match": {"path": "/m"}, "upstreams": [rb.addr],
         "origins": {"allow": ["https://app.example.com"], "missing": "allow"}},
    ])

    def status(path, origin):
        headers = [("Origin", origin)] if origin else []
        return http_exchange(w.port, build_request(path, key=new_key(), headers=headers)).status
    assert status("/b", "https://chat.example.com") == 101
    assert status("/b", "https://a.b.example.com") == 101
    assert status("/b", "https://example.com") == 403
    assert status("/b", "https://chat.example.com.evil.net") == 403
    assert status("/b", "http://chat.example.com") == 403
    assert status("/b", None) == 403
    assert status("/m", None) == 101
    assert status("/m", "https://app.example.com") == 101
    assert status("/m", "https://evil.example") == 403


def tls_status(port: int, path: str, ctx: ssl.SSLContext) -> tuple[int, bytes]:
    """One upgrade request over TLS (SNI localhost) to path; the answer's status and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(build_request(path, host=f"localhost:{port}", key=new_key()))
            r = read_response(s)
            return r.status, r.body


def test_authz_on_the_client_certificate_cn_and_sans(weir, peers, certs):  # noqa: F811
    rb = peers.raw("echo")

    def route(name: str, rule: dict) -> dict:
        return {"name": name, "match": {"path": f"/{name}"}, "upstreams": [rb.addr],
                "authz": [{"client_cert": rule}]}

    listener = {"address": "127.0.0.1", "port": 0,
                "tls": {"certificates": [{"cert": str(certs.default.cert), "key": str(certs.default.key)}],
                        "client_ca": str(certs.ca), "client_cert": "optional"}}
    w = weir.start(make_config([
        route("cn", {"subject_cn_any_of": ["client1", "*.ops.weir.test"]}),
        route("dns", {"san_any_of": ["*.svc.weir.test"]}),
        route("uri", {"san_any_of": ["spiffe://weir.test/ns/chat"]}),
        route("email", {"subject_cn_any_of": ["nobody"], "san_any_of": ["ops@weir.test"]}),
    ], listeners=[listener]))
    client1 = client_context(certs, client=certs.client1)   # CN=client1, no SAN
    svc = client_context(certs, client=certs.client_svc)     # CN=chat-svc, DNS/URI/email SANs
    deep = client_context(certs, client=certs.client_deep)   # DNS:a.chat.svc.weir.test
    anon = client_context(certs)

    assert tls_status(w.port, "/cn", client1)[0] == 101
    status, body = tls_status(w.port, "/cn", svc)
    assert status == 403 and b"client certificate has no subject CN one of client1" in body, (status, body)
    status, body = tls_status(w.port, "/cn", anon)
    assert status == 403 and b"client certificate required" in body, (status, body)

    assert tls_status(w.port, "/dns", svc)[0] == 101
    assert tls_status(w.port, "/dns", deep)[0] == 403      # *.x matches one label only
    assert tls_status(w.port, "/dns", client1)[0] == 403   # no SAN at all
    assert tls_status(w.port, "/uri", svc)[0] == 101
    assert tls_status(w.port, "/uri", deep)[0] == 403
    assert tls_status(w.port, "/email", svc)[0] == 101
    assert tls_status(w.port, "/email", client1)[0] == 403

    m = w.metrics()
    for r, n in (("cn", 2), ("dns", 2), ("uri", 1), ("email", 1)):
        assert m[f'weir_authz_denied_total{{route="{r}"}}'] == n, r
    assert m['weir_handshakes_failed_total{route="cn",status="403",reason="authz"}'] == 2
