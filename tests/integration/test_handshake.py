"""9. Handshake refusals (each with its HTTP status and a reason body), handshake
timeout, header and message size limits, routing."""

import asyncio
import socket
import time

import pytest
import websockets

from aiohelp import connect, run
from weirlib import (OP_BINARY, OP_CONT, OP_TEXT, RawClient, accept_key, build_request,
                     http_exchange, make_config, new_key, read_response, wait_peer_close)


@pytest.fixture(scope="module")
def hs_weir(module_weir):
    return module_weir.start(make_config(
        [
            {"name": "exact", "match": {"path": "/exact"}, "upstreams": "echo"},
            {"name": "origin", "match": {"path": "/origin"}, "upstreams": "echo",
             "origins": ["https://ok.example"]},
            {"name": "host", "match": {"host": "chat.example.com", "path_prefix": "/h/"},
             "upstreams": "echo"},
            {"name": "hdr", "match": {"path_prefix": "/t/", "headers": {"X-Tenant": "blue"}},
             "upstreams": "echo"},
            {"name": "prefix", "match": {"path_prefix": "/p/"}, "upstreams": "echo"},
        ],
        limits={"max_header_bytes": "4KiB"},
    ))


BAD = [
    # (id, request kwargs, expected status)
    ("unknown-route", dict(path="/nope"), 404),
    ("plain-get", dict(path="/exact", upgrade=None, connection=None, key=None, version=None), 426),
    ("no-upgrade-header", dict(path="/exact", upgrade=None), 426),
    ("no-connection-header", dict(path="/exact", connection=None), 426),
    ("upgrade-not-websocket", dict(path="/exact", upgrade="h2c"), 426),
    ("version-8", dict(path="/exact", version="8"), 426),
    ("no-version", dict(path="/exact", version=None), 426),
    ("no-key", dict(path="/exact", key=None), 400),
    ("short-key", dict(path="/exact", key="c2hvcnQ="), 400),
    ("key-not-base64", dict(path="/exact", key="!!!!!!!!!!!!!!!!!!!!!!=="), 400),
    ("post", dict(path="/exact", method="POST"), 405),
    ("put", dict(path="/exact", method="PUT"), 405),
    ("origin-not-allowed", dict(path="/origin", headers=[("Origin", "https://evil.example")]), 403),
    ("origin-missing", dict(path="/origin"), 403),
    ("wrong-host", dict(path="/h/x", host="other.example.com"), 404),
    ("header-missing", dict(path="/t/x"), 404),
    ("header-wrong-value", dict(path="/t/x", headers=[("X-Tenant", "Blue")]), 404),
    ("exact-not-prefix", dict(path="/exact/more"), 404),
]


@pytest.mark.parametrize("kw,status", [(b[1], b[2]) for b in BAD], ids=[b[0] for b in BAD])
def test_bad_handshake_status(hs_weir, kw, status):
    mark = hs_weir.log.mark()
    r = http_exchange(hs_weir.port, build_request(**kw))
    assert r.status == status, (r.status, r.body)
    assert r.body.strip(), "the body must carry the reason"
    if status == 426:
        assert r.header("sec-websocket-version") == "13"
    if status == 405:
        assert "GET" in (r.header("allow") or "")
    ev = hs_weir.log.wait("handshake.reject", since=mark, status=status)[0]
    assert ev["reason"]
    assert ev["client"].startswith("127.0.0.1:")
    assert r.body.decode().strip() == ev["reason"].strip()


GOOD = [
    ("exact", dict(path="/exact"), "exact"),
    ("exact-with-query", dict(path="/exact?room=1"), "exact"),
    ("origin-allowed", dict(path="/origin", headers=[("Origin", "https://ok.example")]), "origin"),
    ("origin-case-insensitive", dict(path="/origin", headers=[("Origin", "HTTPS://OK.EXAMPLE")]), "origin"),
    ("host", dict(path="/h/x", host="chat.example.com:8080"), "host"),
    ("host-case", dict(path="/h/x", host="CHAT.example.com"), "host"),
    ("header", dict(path="/t/x", headers=[("X-Tenant", "blue")]), "hdr"),
    ("header-name-case", dict(path="/t/x", headers=[("x-tenant", "blue")]), "hdr"),
    ("prefix", dict(path="/p/a/b"), "prefix"),
]


@pytest.mark.parametrize("kw,route", [(g[1], g[2]) for g in GOOD], ids=[g[0] for g in GOOD])
def test_good_handshake_routes(hs_weir, kw, route):
    mark = hs_weir.log.mark()
    key = new_key()
    with socket.create_connection(("127.0.0.1", hs_weir.port), timeout=5) as s:
        s.sendall(build_request(key=key, **kw))
        r = read_response(s)
        assert r.status == 101, (r.status, r.body)
        assert r.header("sec-websocket-accept") == accept_key(key)
        assert (r.header("upgrade") or "").lower() == "websocket"
        assert "upgrade" in (r.header("connection") or "").lower()
    ev = hs_weir.log.wait("conn.open", since=mark)[0]
    assert ev["route"] == route


def test_oversize_header_431(hs_weir):
    mark = hs_weir.log.mark()
    r = http_exchange(hs_weir.port, build_request("/exact", headers=[("X-Big", "a" * 5000)]))
    assert r.status == 431
    hs_weir.log.wait("handshake.reject", since=mark, status=431)


def test_header_just_under_limit_accepted(hs_weir):
    base = len(build_request("/exact", headers=[("X-Big", "")]))
    r = http_exchange(hs_weir.port, build_request("/exact", headers=[("X-Big", "a" * (4096 - base - 64))]))
    assert r.status == 101


def test_handshake_timeout_partial_headers(weir):
    w = weir.routes([{"upstreams": "echo"}], timeouts={"handshake": "1s"})
    with socket.create_connection(("127.0.0.1", w.port), timeout=5) as s:
        s.sendall(b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        dt = wait_peer_close(s, timeout=4)
    assert 0.7 <= dt <= 2.5, f"closed after {dt:.2f}s, handshake timeout is 1s"
    ev = w.log.wait("handshake.reject", status=408, timeout=3)[0]
    assert ev["reason"]


def test_handshake_timeout_slowloris(weir):
    """Bytes trickling in do not extend the deadline: the whole request has 1 s."""
    w = weir.routes([{"upstreams": "echo"}], timeouts={"handshake": "1s"})
    req = build_request("/x")
    with socket.create_connection(("127.0.0.1", w.port), timeout=5) as s:
        t0 = time.monotonic()
        closed_at = None
        for i in range(len(req) - 4):
            try:
                s.sendall(req[i:i + 1])
            except OSError:
                closed_at = time.monotonic() - t0
                break
            time.sleep(0.05)
            if time.monotonic() - t0 > 4:
                break
        if closed_at is None:
            closed_at = (time.monotonic() - t0) + wait_peer_close(s, timeout=3)
    assert closed_at <= 2.5, f"slow request kept alive for {closed_at:.2f}s"
    w.log.wait("handshake.reject", status=408, timeout=3)


def test_handshake_timeout_no_bytes(weir):
    w = weir.routes([{"upstreams": "echo"}], timeouts={"handshake": "1s"})
    with socket.create_connection(("127.0.0.1", w.port), timeout=5) as s:
        dt = wait_peer_close(s, timeout=4)
    assert 0.7 <= dt <= 2.5, f"closed after {dt:.2f}s"


@pytest.fixture
def small_limits(weir, peers):
    py = peers.py("echo")
    w = weir.routes([
        {"name": "msg", "match": {"path": "/msg"}, "upstreams": [py.addr],
         "limits": {"max_message_bytes": "1KiB"}},
        {"name": "frame", "match": {"path": "/frame"}, "upstreams": [py.addr],
         "limits": {"max_frame_bytes": "1KiB", "max_message_bytes": "64KiB"}},
    ])
    return w, py


def _closed_code(url, payload):
    async def go():
        async with connect(url) as ws:
            await ws.send(payload)
            try:
                got = await asyncio.wait_for(ws.recv(), 3)
                return ("echoed", len(got))
            except websockets.ConnectionClosed as e:
                return (e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else None)
    return run(go())


def test_oversize_message_1009(small_limits):
    w, py = small_limits
    code, _ = _closed_code(w.url("/msg"), b"x" * 2000)
    assert code == 1009
    ev = py.log.wait("closed", timeout=5)[0]
    assert ev["code"] not in (None, 1006), f"backend got no Close frame: {ev}"
    assert ev["received"] == 0, "the oversize message must not reach the backend"


def test_message_at_limit_passes(small_limits):
    w, _ = small_limits
    assert _closed_code(w.url("/msg"), b"x" * 1024) == ("echoed", 1024)


def test_oversize_fragmented_message_1009(small_limits):
    w, py = small_limits
    c = RawClient(w.port, "/msg")
    try:
        c.send(OP_TEXT, b"a" * 600, fin=False)
        c.send(OP_CONT, b"b" * 600, fin=True)
        f = c.expect_close(timeout=3)
        assert f.close_code == 1009
    finally:
        c.close()


def test_oversize_frame_1009(small_limits):
    w, _ = small_limits
    c = RawClient(w.port, "/frame")
    try:
        c.send(OP_BINARY, b"a" * 1000)  # under the frame limit: echoed
        assert c.recv_message(timeout=5) == (OP_BINARY, b"a" * 1000)
        c.send(OP_BINARY, b"a" * 1500, fin=False)  # one frame over 1 KiB
        f = c.expect_close(timeout=3)
        assert f.close_code == 1009
    finally:
        c.close()


def test_oversize_message_from_backend_1009(weir, peers):
    """The limit holds in the upstream->client direction too: the backend gets 1009 and
    the client gets a Close."""
    py = peers.py("headers")  # its first message (the request as JSON) is > 200 bytes
    w = weir.routes([{"upstreams": [py.addr], "limits": {"max_message_bytes": "200B"}}])

    async def go():
        async with connect(w.url("/"), extra_headers=[("X-Pad", "p" * 300)]) as ws:
            try:
                await asyncio.wait_for(ws.recv(), 3)
                return "message passed"
            except websockets.ConnectionClosed as e:
                return e.rcvd.code if e.rcvd else None

    client_code = run(go())
    assert client_code not in ("message passed", None, 1006)
    ev = py.log.wait("closed", timeout=5)[0]
    assert ev["code"] == 1009
