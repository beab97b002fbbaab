"""TLS: wss:// listeners (`tls:` in a listener) and wss:// upstreams (`upstream_tls:` in a
route), SNI, mTLS, versions and ciphers, session resumption, OCSP stapling, reload on
SIGHUP, and check-config errors for TLS keys. The test PKI comes from tlscerts.py
(generated once per session with the openssl CLI).

Clients: Python websockets 10.4 and the ssl module, Node ws (tests/node/tls_client.js),
`openssl s_client`, and raw sockets for bytes that are not TLS at all. The wss:// backend
is peers/tlsback.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
import websockets

from aiohelp import connect, run
from tlscerts import Certs, Pair, certs, client_context, subject_cn  # noqa: F401 (fixture)
from weirlib import (
    flood_payload,
    MiB,
    NODE_DIR,
    PEERS_DIR,
    PYTHON,
    Peer,
    build_request,
    http_exchange,
    make_config,
    node_available,
    random_text,
    read_response,
    wait_peer_close,
    weir_bin,
)

SIZES = [0, 125, 126, 65535, 65536, 1 * MiB]

# --------------------------------------------------------------------------- helpers


def cert_entry(pair: Pair, **kw) -> dict:
    return {"cert": str(pair.cert), "key": str(pair.key), **kw}


def tls_config(routes: list[dict], certificates: list[dict], tls: dict | None = None,
               **top) -> dict:
    """make_config with its one listener made a TLS listener."""
    listener = {"address": "127.0.0.1", "port": 0,
                "tls": {"certificates": certificates, **(tls or {})}}
    return make_config(routes, listeners=[listener], **top)


ECHO_ROUTE = {"name": "echo", "match": {"path_prefix": "/"}, "upstreams": ["echo"]}


def wss(port: int, path: str = "/echo") -> str:
    return f"wss://localhost:{port}{path}"


async def echo_once(url: str, ctx: ssl.SSLContext, payload, **kw):
    async with connect(url, ssl=ctx, open_timeout=5, **kw) as ws:
        await ws.send(payload)
        return await asyncio.wait_for(ws.recv(), 10)


def expect_tls_failure(url: str, ctx: ssl.SSLContext, **kw) -> BaseException:
    """Open a wss connection that must fail at the TLS level: an SSL error, a reset or a
    closed connection; not an HTTP status, not a hang. Returns the exception."""
    async def go():
        async with connect(url, ssl=ctx, open_timeout=5, **kw) as ws:
            await ws.send("must not get through")
            return await asyncio.wait_for(ws.recv(), 3)

    try:
        got = run(go(), timeout=10)
    except websockets.exceptions.InvalidStatusCode as e:
        pytest.fail(f"expected a TLS failure, got an HTTP answer {e.status_code}")
    except TimeoutError:  # asyncio.TimeoutError is TimeoutError, a subclass of OSError
        pytest.fail("expected a TLS failure, the connection hung instead")
    except (ssl.SSLError, OSError, EOFError, websockets.exceptions.InvalidHandshake,
            websockets.exceptions.ConnectionClosed) as e:
        return e
    pytest.fail(f"expected a TLS failure, the connection worked and echoed {got!r}")


def handshake(port: int, ctx: ssl.SSLContext, sni: str | None, timeout: float = 5.0):
    """A raw TLS handshake with 127.0.0.1:port; returns (der_cert, version, cipher, alpn)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            return (s.getpeercert(binary_form=True), s.version(), s.cipher(),
                    s.selected_alpn_protocol())


def insecure_ctx() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def served_subject(port: int, sni: str | None) -> str:
    """The subject (RFC 2253) of the certificate Weir serves for this SNI (None = no SNI)."""
    der = handshake(port, insecure_ctx(), sni)[0]
    return subject_cn(der)


def client_hello(sni: str = "localhost") -> bytes:
    """The bytes of a real ClientHello (Python's ssl, memory BIOs, nothing sent)."""
    ctx = insecure_ctx()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = out.read()
    assert data[:1] == b"\x16" and len(data) > 100, data[:16]
    return data


def client_addr(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


# --------------------------------------------------------------------------- 1. echo


@pytest.fixture(scope="module")
def echo_env(module_weir, module_peers, certs):
    py = module_peers.py("echo")
    hdr = module_peers.py("headers")
    w = module_weir.start(tls_config(
        [
            {"name": "py", "match": {"path": "/py"}, "upstreams": [py.addr]},
            {"name": "headers", "match": {"path": "/headers"}, "upstreams": [hdr.addr]},
            {"name": "echo", "match": {"path": "/echo"}, "upstreams": ["echo"]},
        ],
        [cert_entry(certs.default)]))
    return w


@pytest.mark.parametrize("size", SIZES, ids=[f"{s}B" for s in SIZES])
@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("path", ["/py", "/echo"])
def test_wss_echo_python(echo_env, certs, path, kind, size):
    w = echo_env
    rng = random.Random(size * 31 + len(kind) + len(path))
    payload = random_text(rng, size) if kind == "text" else rng.randbytes(size)

    async def go():
        async with connect(wss(w.port, path), ssl=client_context(certs)) as ws:
            await ws.send(payload)
            got = await asyncio.wait_for(ws.recv(), 20)
            await ws.send(payload[:3])  # framing still in sync right behind it
            got2 = await asyncio.wait_for(ws.recv(), 20)
            return got, got2

    got, got2 = run(go(), timeout=40)
    assert type(got) is type(payload), f"sent {kind}, got {type(got).__name__}"
    assert len(got) == len(payload)
    assert got == payload
    assert got2 == payload[:3]


def test_wss_session_open_fields(echo_env, certs):
    w = echo_env
    mark = w.log.mark()
    assert run(echo_once(wss(w.port, "/py"), client_context(certs), "hi")) == "hi"
    ev = w.log.wait("conn.open", since=mark)[0]
    assert ev.get("tls") == "TLSv1.3", ev
    assert ev.get("sni") == "localhost", ev
    assert not ev.get("client_cert"), f"no client certificate was sent: {ev}"


def test_wss_session_open_tls12(echo_env, certs):
    w = echo_env
    ctx = client_context(certs)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    mark = w.log.mark()
    assert run(echo_once(wss(w.port, "/echo"), ctx, b"\x00\x01")) == b"\x00\x01"
    ev = w.log.wait("conn.open", since=mark)[0]
    assert ev.get("tls") == "TLSv1.2", ev


def test_wss_forwarded_proto_wss(echo_env, certs):
    w = echo_env

    async def go():
        async with connect(wss(w.port, "/headers"), ssl=client_context(certs)) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    info = run(go(), timeout=20)
    headers = {}
    for k, v in info["headers"]:
        headers.setdefault(k.lower(), []).append(v)
    assert headers.get("x-forwarded-proto") == ["wss"], headers
    fwd = headers.get("forwarded", [""])[0]
    assert re.search(r"(^|;)\s*proto=wss\b", fwd, re.I), f"Forwarded: {fwd!r}"


def test_wss_alpn(echo_env, certs):
    w = echo_env
    ctx = client_context(certs)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    assert handshake(w.port, ctx, "localhost")[3] == "http/1.1"
    # only h2 offered: nothing is selected, the connection goes on
    ctx = client_context(certs)
    ctx.set_alpn_protocols(["h2"])
    assert run(echo_once(wss(w.port, "/echo"), ctx, "alpn")) == "alpn"


def test_plain_ws_refused_on_tls_port(echo_env):
    """6. A WebSocket upgrade in clear text on the TLS port: 400 with a clear body."""
    w = echo_env
    mark = w.log.mark()
    r = http_exchange(w.port, build_request("/echo", host=f"127.0.0.1:{w.port}"))
    assert r.status == 400, (r.status, r.body)
    assert b"plain HTTP request sent to a TLS port" in r.body, r.body
    ev = w.log.wait("handshake.reject", since=mark, status=400)[0]
    assert "plain HTTP request sent to a TLS port" in ev.get("reason", ""), ev
    assert w.alive()


# --------------------------------------------------------------------------- 2. mTLS


@pytest.fixture(scope="module")
def mtls_env(module_weir, certs):
    def start(**tls):
        return module_weir.start(tls_config([ECHO_ROUTE], [cert_entry(certs.default)],
                                            {"client_ca": str(certs.ca), **tls}))
    return {"require": start(client_cert="require"), "optional": start(client_cert="optional"),
            "implicit": start()}


def test_mtls_require_with_cert(mtls_env, certs):
    w = mtls_env["require"]
    mark = w.log.mark()
    ctx = client_context(certs, client=certs.client1)
    assert run(echo_once(wss(w.port), ctx, "mtls")) == "mtls"
    ev = w.log.wait("conn.open", since=mark)[0]
    assert ev.get("client_cert") == "CN=client1,O=Weir Test", ev  # RFC 2253


@pytest.mark.parametrize("mode", ["require", "implicit"])
def test_mtls_require_without_cert(mtls_env, certs, mode):
    """client_cert: require (explicit, or implied by client_ca): no certificate, no session."""
    w = mtls_env[mode]
    mark = w.log.mark()
    expect_tls_failure(wss(w.port), client_context(certs))
    w.log.wait("tls.handshake_failed", since=mark)
    assert not w.log.find("conn.open", since=mark)
    assert w.alive()


def test_mtls_require_cert_from_wrong_ca(mtls_env, certs):
    w = mtls_env["require"]
    mark = w.log.mark()
    expect_tls_failure(wss(w.port), client_context(certs, client=certs.client_wrong))
    w.log.wait("tls.handshake_failed", since=mark)
    assert not w.log.find("conn.open", since=mark)


def test_mtls_optional(mtls_env, certs):
    w = mtls_env["optional"]
    mark = w.log.mark()
    assert run(echo_once(wss(w.port), client_context(certs), "anon")) == "anon"
    ev = w.log.wait("conn.open", since=mark)[0]
    assert not ev.get("client_cert"), ev
    mark = w.log.mark()
    ctx = client_context(certs, client=certs.client1)
    assert run(echo_once(wss(w.port), ctx, "named")) == "named"
    ev = w.log.wait("conn.open", since=mark)[0]
    assert "CN=client1" in (ev.get("client_cert") or ""), ev


# --------------------------------------------------------------------------- 3. Node ws


def run_node(url: str, certs: Certs, sizes, servername: str = "", client: Pair | None = None):
    if not node_available():
        pytest.fail("node or tests/node/node_modules/ws missing: run scripts/setup test")
    argv = ["node", str(NODE_DIR / "tls_client.js"), url, ",".join(map(str, sizes)),
            str(certs.ca), servername]
    if client:
        argv += [str(client.cert), str(client.key)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=NODE_DIR)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, f"node client printed nothing; rc={p.returncode} stderr={p.stderr[-2000:]}"
    return p.returncode, json.loads(lines[-1])


def test_wss_echo_node(echo_env, certs):
    w = echo_env
    for path in ("/py", "/echo"):
        # Connect to the address Weir bound; "localhost" only as SNI and the name checked
        # (a stock /etc/hosts also maps localhost to ::1, which Node tries first).
        rc, res = run_node(f"wss://127.0.0.1:{w.port}{path}", certs, SIZES, "localhost")
        assert rc == 0 and res["ok"], res
        assert res["checked"] == 2 * len(SIZES)
        assert res["close_code"] == 1000
        assert res["peer_cn"] == "weir-default"
        assert res["tls"] == "TLSv1.3"


def test_wss_node_mtls(mtls_env, certs):
    w = mtls_env["require"]
    rc, res = run_node(f"wss://127.0.0.1:{w.port}/", certs, [0, 70000], "localhost", certs.client1)
    assert rc == 0 and res["ok"], res
    rc, res = run_node(f"wss://127.0.0.1:{w.port}/", certs, [1], "localhost")
    assert rc != 0 and not res["ok"], f"no client certificate, yet: {res}"


# --------------------------------------------------------------------------- 4. SNI


@pytest.fixture(scope="module")
def sni_env(module_weir, certs):
    certificates = [cert_entry(certs.default), cert_entry(certs.a), cert_entry(certs.bwild),
                    cert_entry(certs.one, names=["alias.weir.test"])]
    lax = module_weir.start(tls_config([ECHO_ROUTE], certificates))
    strict = module_weir.start(tls_config([ECHO_ROUTE], certificates[:3], {"strict_sni": True}))
    return lax, strict


SNI_CASES = [
    ("a.weir.test", "CN=weir-a"),
    ("A.Weir.Test", "CN=weir-a"),
    ("x.b.weir.test", "CN=weir-b-wild"),
    ("b.weir.test", "CN=weir-default"),      # *.b.weir.test does not cover b.weir.test
    ("alias.weir.test", "CN=weir-one"),      # explicit names:
    ("localhost", "CN=weir-default"),
    ("unknown.example", "CN=weir-default"),
    (None, "CN=weir-default"),               # no SNI at all
]


@pytest.mark.parametrize("sni,subject", SNI_CASES, ids=[str(c[0]) for c in SNI_CASES])
def test_sni_selects_certificate(sni_env, sni, subject):
    lax, _ = sni_env
    assert served_subject(lax.port, sni) == subject


def test_sni_full_session_and_log(sni_env, certs):
    lax, _ = sni_env
    mark = lax.log.mark()
    url = f"wss://127.0.0.1:{lax.port}/"
    # verified: chain to the test CA and the name a.weir.test
    got = run(echo_once(url, client_context(certs), "sni", server_hostname="a.weir.test"))
    assert got == "sni"
    ev = lax.log.wait("conn.open", since=mark)[0]
    assert ev.get("sni") == "a.weir.test", ev


def test_strict_sni(sni_env, certs):
    _, strict = sni_env
    assert served_subject(strict.port, "a.weir.test") == "CN=weir-a"
    mark = strict.log.mark()
    with pytest.raises(ssl.SSLError) as ei:
        served_subject(strict.port, "unknown.weir.test")
    assert "UNRECOGNIZED_NAME" in str(ei.value).upper(), f"want alert unrecognized_name: {ei.value}"
    ev = strict.log.wait("tls.handshake_failed", since=mark)[0]
    assert ev.get("sni") == "unknown.weir.test", ev
    assert strict.alive()


# --------------------------------------------------------------------------- 5. versions


@pytest.fixture(scope="module")
def version_env(module_weir, certs):
    default = module_weir.start(tls_config([ECHO_ROUTE], [cert_entry(certs.default)]))
    only13 = module_weir.start(tls_config([ECHO_ROUTE], [cert_entry(certs.default)],
                                          {"min_version": "1.3"}))
    gcm = module_weir.start(tls_config([ECHO_ROUTE], [cert_entry(certs.default)],
                                       {"ciphers": "ECDHE+AESGCM",
                                        "ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"}))
    return default, only13, gcm


def s_client_tls11(port: int) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_1",
                           "-cipher", "DEFAULT@SECLEVEL=0"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)


def test_tls11_client_works_against_openssl_server(certs):
    """Control for the next test: this machine's s_client really can speak TLS 1.1."""
    srv = subprocess.Popen(["openssl", "s_server", "-accept", "127.0.0.1:0", "-naccept", "1",
                            "-cert", str(certs.default.cert), "-key", str(certs.default.key),
                            "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        port = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            line = srv.stdout.readline()
            m = re.match(r"ACCEPT .*:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "openssl s_server did not start"
        p = s_client_tls11(port)
        assert "Cipher is (NONE)" not in p.stdout, p.stdout + p.stderr
        assert re.search(r"Protocol\s*:\s*TLSv1\.1", p.stdout), p.stdout
    finally:
        srv.kill()
        srv.wait(timeout=5)


def test_tls11_refused(version_env):
    w = version_env[0]
    mark = w.log.mark()
    p = s_client_tls11(w.port)
    assert p.returncode != 0, p.stdout
    assert "Cipher is (NONE)" in p.stdout, p.stdout
    w.log.wait("tls.handshake_failed", since=mark)
    assert w.alive()


def test_min_version_13(version_env, certs):
    _, only13, _ = version_env
    ctx = client_context(certs)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    mark = only13.log.mark()
    with pytest.raises(ssl.SSLError):
        handshake(only13.port, ctx, "localhost")
    only13.log.wait("tls.handshake_failed", since=mark)
    # TLS 1.3 clients are served
    mark = only13.log.mark()
    assert run(echo_once(wss(only13.port), client_context(certs), "13")) == "13"
    assert only13.log.wait("conn.open", since=mark)[0].get("tls") == "TLSv1.3"


def test_ciphers_tls12(version_env, certs):
    _, _, gcm = version_env
    ctx = client_context(certs)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    mark = gcm.log.mark()
    with pytest.raises(ssl.SSLError):
        handshake(gcm.port, ctx, "localhost")
    gcm.log.wait("tls.handshake_failed", since=mark)
    ctx = client_context(certs)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    _, version, cipher, _ = handshake(gcm.port, ctx, "localhost")
    assert version == "TLSv1.2" and "GCM" in cipher[0], (version, cipher)


def test_ciphersuites_tls13(version_env, certs):
    default, _, gcm = version_env
    _, version, cipher, _ = handshake(gcm.port, client_context(certs), "localhost")
    assert (version, cipher[0]) == ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256")
    _, version, cipher, _ = handshake(default.port, client_context(certs), "localhost")
    assert version == "TLSv1.3" and cipher[0] != "TLS_CHACHA20_POLY1305_SHA256", cipher


# --------------------------------------------------------------------------- resumption, OCSP


def upgrade_over(s: ssl.SSLSocket) -> None:
    s.sendall(build_request("/echo", host="localhost"))
    r = read_response(s, 5)
    assert r.status == 101, (r.status, r.body)


def resumed(port: int, ctx: ssl.SSLContext, n: int) -> list[bool]:
    """n connections in a row, each offering the session (ticket) of the previous one."""
    sess, out = None, []
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost", session=sess) as s:
                upgrade_over(s)  # the TLS 1.3 tickets arrive by now
                out.append(s.session_reused)
                sess = s.session
    return out


def test_listener_session_resumption(version_env, certs):
    """Session tickets (default on), across both workers: every reconnect resumes."""
    default = version_env[0]
    assert resumed(default.port, client_context(certs), 6) == [False] + [True] * 5
    ctx = client_context(certs)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    assert resumed(default.port, ctx, 4) == [False] + [True] * 3


def test_listener_no_resumption(weir, certs):
    w = weir.start(tls_config([ECHO_ROUTE], [cert_entry(certs.default)],
                              {"session_tickets": False, "session_cache": 0}))
    assert resumed(w.port, client_context(certs), 3) == [False] * 3


def s_client_status(port: int, ca: Path) -> str:
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                        "-servername", "localhost", "-status", "-CAfile", str(ca)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    return p.stdout + p.stderr


def test_ocsp_stapling(weir, version_env, certs):
    w = weir.start(tls_config([ECHO_ROUTE],
                              [cert_entry(certs.default, ocsp=str(certs.default_ocsp))]))
    out = s_client_status(w.port, certs.ca)
    assert "OCSP Response Status: successful" in out, out
    assert "Cert Status: good" in out, out
    assert "Verify return code: 0 (ok)" in out, out
    # without `ocsp`, nothing is stapled
    out = s_client_status(version_env[0].port, certs.ca)
    assert "OCSP response: no response sent" in out, out


# --------------------------------------------------------------------------- 7. garbage


@pytest.fixture(scope="module")
def garbage_env(module_weir, certs):
    return module_weir.start(tls_config([ECHO_ROUTE], [cert_entry(certs.default)],
                                        {"handshake_timeout": "1s"}))


def assert_serves(w, certs):
    assert w.alive()
    assert run(echo_once(wss(w.port), client_context(certs), "still here")) == "still here"


def test_garbage_random_bytes(garbage_env, certs):
    w = garbage_env
    rng = random.Random(7)
    data = b"\x80" + rng.randbytes(4095)  # not a TLS record, not an HTTP request line
    with socket.create_connection(("127.0.0.1", w.port), timeout=5) as s:
        addr = client_addr(s)
        try:
            s.sendall(data)
        except ConnectionError:
            pass
        waited = wait_peer_close(s, 4)
    assert waited < 4
    evs = w.log.wait(None, pred=lambda e: e.get("client") == addr and e.get("event") in
                     ("tls.handshake_failed", "handshake.reject"))
    assert evs, "nothing logged for the garbage connection"
    assert_serves(w, certs)


def test_garbage_tls_record(garbage_env, certs):
    """A handshake record header followed by noise."""
    w = garbage_env
    rng = random.Random(8)
    body = rng.randbytes(512)
    data = b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body
    with socket.create_connection(("127.0.0.1", w.port), timeout=5) as s:
        addr = client_addr(s)
        s.sendall(data)
        waited = wait_peer_close(s, 4)
    assert waited < 4
    w.log.wait("tls.handshake_failed", client=addr)
    assert_serves(w, certs)


def test_truncated_client_hello_then_close(garbage_env, certs):
    w = garbage_env
    hello = client_hello()
    with socket.create_connection(("127.0.0.1", w.port), timeout=5) as s:
        addr = client_addr(s)
        s.sendall(hello[: len(hello) // 2])
        s.shutdown(socket.SHUT_WR)
        waited = wait_peer_close(s, 4)
    assert waited < 4, "Weir kept a half-closed, half-handshaken connection"
    w.log.wait("tls.handshake_failed", client=addr)
    assert_serves(w, certs)


def stall(w, send: str, n: int = 5) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", w.port), timeout=5)
        if send == "half-hello":
            s.sendall(client_hello()[:40])
        socks.append(s)
    return socks


@pytest.mark.parametrize("send", ["nothing", "half-hello"])
def test_handshake_timeout(garbage_env, certs, send):
    """handshake_timeout: 1s closes clients that stall before or inside the TLS handshake,
    and other clients are served meanwhile."""
    w = garbage_env
    stalled = stall(w, send)
    try:
        t0 = time.monotonic()
        assert_serves(w, certs)  # not blocked by the stalled ones
        for s in stalled:
            wait_peer_close(s, 4)
        elapsed = time.monotonic() - t0
        assert 0.5 <= elapsed < 3, f"stalled handshakes closed after {elapsed:.2f}s (timeout 1s)"
    finally:
        for s in stalled:
            s.close()
    assert_serves(w, certs)


@pytest.mark.parametrize("send", ["nothing", "half-hello"])
def test_handshake_timeout_logged(garbage_env, send):
    """A TLS handshake timeout is a handshake failure: tls_handshake_failed, per client."""
    w = garbage_env
    stalled = stall(w, send, n=2)
    try:
        addrs = [client_addr(s) for s in stalled]
        for s in stalled:
            wait_peer_close(s, 4)
        for a in addrs:
            w.log.wait("tls.handshake_failed", client=a, timeout=2)
    finally:
        for s in stalled:
            s.close()


# --------------------------------------------------------------------------- 8. wss -> wss


def tls_backend(pair: Pair, client_ca: Path | None = None) -> Peer:
    argv = [PYTHON, str(PEERS_DIR / "tlsback.py"), "--cert", str(pair.cert), "--key", str(pair.key)]
    if client_ca:
        argv += ["--client-ca", str(client_ca)]
    return Peer(argv)


@pytest.fixture(scope="module")
def upstream_env(module_weir, module_peers, certs):
    back = tls_backend(certs.backend)              # cert: CN=weir-backend, DNS:localhost only
    mback = tls_backend(certs.backend, certs.ca)   # same, requires a client certificate
    py = module_peers.py("echo")
    module_peers.peers += [back, mback]
    ca, ca2 = str(certs.ca), str(certs.ca2)
    lb, lm = f"wss://localhost:{back.port}", f"wss://localhost:{mback.port}"
    ip = f"wss://127.0.0.1:{back.port}"

    def route(name, upstream, utls=None):
        r = {"name": name, "match": {"path": f"/{name}"}, "upstreams": [upstream]}
        if utls is not None:
            r["upstream_tls"] = utls
        return r

    routes = [
        route("ok", lb, {"ca": ca}),
        route("wrongca", lb, {"ca": ca2}),
        route("insecure", lb, {"ca": ca2, "verify": False}),
        route("ipname", ip, {"ca": ca, "server_name": "localhost"}),
        route("ipnoname", ip, {"ca": ca}),
        route("systemca", lb),
        route("mtls", lm, {"ca": ca, "cert": str(certs.client1.cert), "key": str(certs.client1.key)}),
        route("mtlsnocert", lm, {"ca": ca}),
        route("plainws", f"ws://{py.addr}"),
    ]
    w = module_weir.start(tls_config(routes, [cert_entry(certs.default)]))
    return w, back, mback


def upstream_refused(w, certs, path: str) -> dict:
    mark = w.log.mark()
    with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
        run(echo_once(wss(w.port, path), client_context(certs), "x"), timeout=20)
    assert ei.value.status_code == 502, ei.value
    ev = w.log.wait("handshake.reject", since=mark, status=502)[0]
    assert ev.get("reason", "").startswith("upstream TLS handshake failed"), ev
    return ev


@pytest.mark.parametrize("size", [0, 126, 65536, 1 * MiB], ids=lambda s: f"{s}B")
def test_wss_to_wss_echo(upstream_env, certs, size):
    w, back, _ = upstream_env
    payload = random.Random(size).randbytes(size)
    mark = back.log.mark()
    assert run(echo_once(wss(w.port, "/ok"), client_context(certs), payload), timeout=30) == payload
    ev = back.log.wait("open", since=mark)[0]
    assert ev["sni"] == "localhost", ev
    assert ev["tls"] == "TLSv1.3", ev


def test_wss_to_wss_wrong_ca(upstream_env, certs):
    w, _, _ = upstream_env
    upstream_refused(w, certs, "/wrongca")
    assert w.alive()


def test_wss_to_wss_system_ca(upstream_env, certs):
    """No `ca`: the system store, which does not know the test CA."""
    w, _, _ = upstream_env
    upstream_refused(w, certs, "/systemca")


def test_wss_to_wss_verify_false(upstream_env, certs):
    w, _, _ = upstream_env
    assert run(echo_once(wss(w.port, "/insecure"), client_context(certs), "unverified")) == "unverified"
    ev = w.log.find("upstream_tls_insecure")
    assert ev, "verify: false must be logged at start (upstream_tls_insecure)"
    assert ev[0].get("level") == "warn", ev[0]


def test_wss_to_wss_server_name(upstream_env, certs):
    w, back, _ = upstream_env
    # the backend's certificate names localhost only: 127.0.0.1 does not match it
    upstream_refused(w, certs, "/ipnoname")
    mark = back.log.mark()
    assert run(echo_once(wss(w.port, "/ipname"), client_context(certs), "named")) == "named"
    assert back.log.wait("open", since=mark)[0]["sni"] == "localhost"


def test_wss_to_wss_client_cert(upstream_env, certs):
    w, _, mback = upstream_env
    mark = mback.log.mark()
    assert run(echo_once(wss(w.port, "/mtls"), client_context(certs), "m")) == "m"
    ev = mback.log.wait("open", since=mark)[0]
    assert "CN=client1" in (ev.get("client_cert") or ""), ev
    mark = w.log.mark()
    with pytest.raises(websockets.exceptions.InvalidStatusCode) as ei:
        run(echo_once(wss(w.port, "/mtlsnocert"), client_context(certs), "x"), timeout=20)
    assert ei.value.status_code in (502, 504), ei.value
    w.log.wait("handshake.reject", since=mark, pred=lambda e: e.get("status") in (502, 504))


def test_wss_to_ws_scheme(upstream_env, certs):
    w, _, _ = upstream_env
    assert run(echo_once(wss(w.port, "/plainws"), client_context(certs), "plain")) == "plain"


def test_upstream_session_resumption(weir, certs):
    back = tls_backend(certs.backend)
    try:
        w = weir.start(tls_config(
            [{"upstreams": [f"wss://localhost:{back.port}"], "upstream_tls": {"ca": str(certs.ca)}}],
            [cert_entry(certs.default)], workers=1))
        for i in range(3):
            assert run(echo_once(wss(w.port), client_context(certs), f"r{i}")) == f"r{i}"
        opens = back.log.wait("open", count=3)
        reused = [e.get("session_reused") for e in opens]
        assert reused[1:] == [True, True], f"backend saw session_reused={reused}"
    finally:
        back.stop()


# --------------------------------------------------------------------------- 9. reload


def install_file(src: Path, dst: Path) -> None:
    """Replace dst by a copy of src atomically (rename over the old file)."""
    tmp = dst.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def install(pair_cert: Path, pair_key: Path, cert: Path, key: Path) -> None:
    install_file(pair_cert, cert)
    install_file(pair_key, key)


def tls_reloaded(w, mark) -> list[dict]:
    """The tls.reload events since mark, once every worker has the new generation
    (config.reload is logged then; tls.reload as soon as the certificates are loaded)."""
    w.log.wait("config.reload", since=mark, timeout=5)
    return w.log.wait("tls.reload", since=mark, timeout=5)


def test_reload_under_traffic(weir, certs, tmp_path):
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    install(certs.one.cert, certs.one.key, cert, key)
    w = weir.start(tls_config([ECHO_ROUTE], [{"cert": str(cert), "key": str(key)}]))
    assert served_subject(w.port, "localhost") == "CN=weir-one"

    N = 50
    counts = [0] * N
    errors: list[str] = []

    async def pinger(i, ready, stop):
        try:
            async with connect(wss(w.port), ssl=client_context(certs), open_timeout=15) as ws:
                ready.release()
                n = 0
                while not stop.is_set():
                    msg = f"{i}:{n}"
                    await ws.send(msg)
                    got = await asyncio.wait_for(ws.recv(), 5)
                    if got != msg:
                        errors.append(f"conn {i}: sent {msg!r}, got {got!r}")
                        return
                    counts[i] += 1
                    n += 1
                    await asyncio.sleep(0.02)
        except Exception as e:  # noqa: BLE001 - every failure is a test failure
            errors.append(f"conn {i}: {type(e).__name__}: {e}")
            ready.release()

    async def go():
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        ready = asyncio.Semaphore(0)
        tasks = [asyncio.create_task(pinger(i, ready, stop)) for i in range(N)]
        for _ in range(N):
            await asyncio.wait_for(ready.acquire(), 20)
        assert not errors, errors[:5]
        await asyncio.sleep(0.5)
        before = list(counts)
        install(certs.two.cert, certs.two.key, cert, key)
        mark = w.log.mark()
        os.kill(w.pid, signal.SIGHUP)
        ev = await loop.run_in_executor(None, lambda: tls_reloaded(w, mark))
        at_reload = list(counts)
        await asyncio.sleep(1.0)
        # a new connection meanwhile sees the new certificate
        subj = await loop.run_in_executor(None, served_subject, w.port, "localhost")
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        return ev[0], before, at_reload, subj

    ev, before, at_reload, subj = run(go(), timeout=60)
    assert not errors, f"{len(errors)} errors, e.g. {errors[:5]}"
    assert ev.get("certificates") == 1, ev
    assert subj == "CN=weir-two"
    progressed = [counts[i] - at_reload[i] for i in range(N)]
    assert min(progressed) >= 5, f"some connections stalled after the reload: {progressed}"
    assert min(at_reload[i] - before[i] for i in range(N)) >= 0

    # a broken pair (key of another certificate): refused, the old pair stays
    install(certs.two.cert, certs.a.key, cert, key)
    mark = w.log.mark()
    os.kill(w.pid, signal.SIGHUP)
    ev = w.log.wait("tls.reload_failed", since=mark, timeout=5)[0]
    assert ev.get("level") == "error", ev
    assert str(key) in ev.get("error", "") or str(cert) in ev.get("error", ""), ev
    assert not w.log.find("tls.reload", since=mark)
    assert served_subject(w.port, "localhost") == "CN=weir-two"
    assert_serves(w, certs)

    # an unreadable file: same
    cert.unlink()
    mark = w.log.mark()
    os.kill(w.pid, signal.SIGHUP)
    ev = w.log.wait("tls.reload_failed", since=mark, timeout=5)[0]
    assert str(cert) in ev.get("error", ""), ev
    assert served_subject(w.port, "localhost") == "CN=weir-two"
    assert_serves(w, certs)

    # and a good pair again is picked up
    install(certs.one.cert, certs.one.key, cert, key)
    mark = w.log.mark()
    os.kill(w.pid, signal.SIGHUP)
    tls_reloaded(w, mark)
    assert served_subject(w.port, "localhost") == "CN=weir-one"


def test_reload_client_ca(weir, certs, tmp_path):
    """SIGHUP re-reads client_ca too: a client refused before is accepted after."""
    ca = tmp_path / "clients.pem"
    install_file(certs.ca2, ca)
    w = weir.start(tls_config([ECHO_ROUTE], [cert_entry(certs.default)], {"client_ca": str(ca)}))
    mark = w.log.mark()
    expect_tls_failure(wss(w.port), client_context(certs, client=certs.client1))
    w.log.wait("tls.handshake_failed", since=mark)
    install_file(certs.ca, ca)
    mark = w.log.mark()
    os.kill(w.pid, signal.SIGHUP)
    tls_reloaded(w, mark)
    ctx = client_context(certs, client=certs.client1)
    assert run(echo_once(wss(w.port), ctx, "after")) == "after"
    assert "CN=client1" in (w.log.wait("conn.open", since=mark)[0].get("client_cert") or "")


# --------------------------------------------------------------------------- 10. check-config


def tls_yaml(cert: str, key: str, extra: str = "") -> str:
    # line numbers matter: cert is on line 6, key on line 7, extra from line 8
    return ("listeners:\n"
            "  - address: 127.0.0.1\n"
            "    port: 0\n"
            "    tls:\n"
            "      certificates:\n"
            f"        - cert: {json.dumps(cert)}\n"
            f"          key: {json.dumps(key)}\n"
            f"{extra}"
            "routes:\n"
            "  - upstreams: echo\n")


def check_config(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([weir_bin(), "check-config", "-c", str(path)],
                          capture_output=True, text=True, timeout=15)


def config_error(path: Path, p: subprocess.CompletedProcess) -> tuple[int, int, str]:
    assert p.returncode == 1, (p.returncode, p.stdout, p.stderr)
    out = p.stderr + p.stdout
    m = re.search(rf"^{re.escape(str(path))}:(\d+):(\d+): (.+)$", out, re.M)
    assert m, f"no {path}:line:col: message in output: {out!r}"
    return int(m.group(1)), int(m.group(2)), m.group(3)


def test_check_config_valid_tls(tmp_path, certs):
    path = tmp_path / "ok.yaml"
    path.write_text(tls_yaml(str(certs.default.cert), str(certs.default.key),
                             "      min_version: \"1.3\"\n      client_ca: " + json.dumps(str(certs.ca))
                             + "\n      client_cert: optional\n      handshake_timeout: 2s\n"))
    p = check_config(path)
    assert p.returncode == 0, (p.stdout, p.stderr)


def test_check_config_missing_cert(tmp_path, certs):
    path = tmp_path / "bad.yaml"
    missing = str(tmp_path / "nope" / "cert.pem")
    path.write_text(tls_yaml(missing, str(certs.default.key)))
    line, col, msg = config_error(path, check_config(path))
    assert line == 6 and col in (11, 17), (line, col, msg)
    assert "cert.pem" in msg, msg
    # weir run refuses it the same way, without starting
    p = subprocess.run([weir_bin(), "run", "-c", str(path)], capture_output=True, text=True,
                       timeout=15)
    assert config_error(path, p)[0] == 6


def test_check_config_missing_key(tmp_path, certs):
    path = tmp_path / "bad.yaml"
    path.write_text(tls_yaml(str(certs.default.cert), str(tmp_path / "nope.key")))
    line, col, msg = config_error(path, check_config(path))
    assert line == 7 and col in (11, 16), (line, col, msg)
    assert "nope.key" in msg, msg


def test_check_config_key_mismatch(tmp_path, certs):
    path = tmp_path / "bad.yaml"
    path.write_text(tls_yaml(str(certs.default.cert), str(certs.a.key)))
    line, col, msg = config_error(path, check_config(path))
    assert line in (6, 7), (line, col, msg)
    assert "match" in msg.lower() or "key" in msg.lower(), msg


@pytest.mark.parametrize("extra,line,word", [
    ("      min_version: \"1.1\"\n", 8, "1.1"),
    ("      client_cert: sometimes\n", 8, "sometimes"),
    ("      min_versoin: \"1.3\"\n", 8, "min_versoin"),
    ("      handshake_timeout: soon\n", 8, "soon"),
], ids=["min_version", "client_cert", "unknown-key", "timeout"])
def test_check_config_bad_tls_values(tmp_path, certs, extra, line, word):
    path = tmp_path / "bad.yaml"
    path.write_text(tls_yaml(str(certs.default.cert), str(certs.default.key), extra))
    got_line, _, msg = config_error(path, check_config(path))
    assert got_line == line and word in msg, (got_line, msg)


# --------------------------------------------------------------------------- backpressure


def test_wss_stalled_client_with_keepalive_pings_loses_nothing(weir, peers, certs):
    """A wss client stops reading while the backend floods and Weir's keepalive pings
    fall due: TLS writes to the client block. Whatever Weir writes next (its ping, more
    data) must wait for the blocked record, or the client sees a corrupt stream. Once the
    client reads, every message arrives intact and in order."""
    count, size = 48, 256 * 1024
    py = peers.py("flood", "--count", str(count), "--size", str(size), "--no-compression")
    w = weir.start(tls_config(
        [{"upstreams": [py.addr], "keepalive": {"interval": "150ms", "timeout": "10s"}}],
        [cert_entry(certs.default)], limits={"buffer_bytes": "64KiB"}))

    async def go():
        async with connect(wss(w.port, "/"), ssl=client_context(certs), max_size=None,
                           max_queue=1, read_limit=2 ** 14, ping_interval=None) as ws:
            await asyncio.sleep(2.0)  # not reading: the client's socket and Weir's buffer fill
            for i in range(count):
                msg = await asyncio.wait_for(ws.recv(), 20)
                assert isinstance(msg, bytes) and len(msg) == size, f"message {i}: {len(msg)} bytes"
                assert msg == flood_payload(i, size), f"message {i}: wrong content"
            await ws.close()
            return ws.close_code

    assert run(go(), timeout=90) == 1000
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["msgs_out"] == count
    assert not w.log.find("protocol.error")
