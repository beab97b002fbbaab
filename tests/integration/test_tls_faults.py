"""The fault-injection tests of test_faults.py that mean something over TLS, with the TLS leg
on the client side, on the backend side, or both: a half-open client, a client that never
reads, a backend or client that resets inside a message or a frame, garbage after the 101,
connection churn. Each checks the same things as over ws: the right Close code, promptly,
nothing lost, and every descriptor given back.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest

from test_faults import GARBAGE, RST, _churn, fd_count, settle, wait_fds
from tlscerts import certs, client_context  # noqa: F401 (fixture)
from weirlib import (MiB, OP_BINARY, OP_CLOSE, OP_CONT, OP_TEXT, RawClient, assert_fragments,
                     close_payload, encode_frame, flood_payload, make_config, recv_until_close,
                     wait_peer_close)


def server_ctx(certs) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(certs.default.cert), str(certs.default.key))
    return ctx


def start(weir, certs, upstream: str, client_tls: bool, backend_tls: bool, **route):
    """Weir with one route to `upstream` (host:port), TLS on the chosen legs."""
    r = {"name": "r", "match": {"path_prefix": "/"},
         "upstreams": [f"{'wss' if backend_tls else 'ws'}://{upstream}"], **route}
    if backend_tls:
        r["upstream_tls"] = {"ca": str(certs.ca)}
    listener = {"address": "127.0.0.1", "port": 0}
    if client_tls:
        listener["tls"] = {"certificates": [{"cert": str(certs.default.cert), "key": str(certs.default.key)}]}
    return weir.start(make_config([r], listeners=[listener], workers=1))


def client(w, certs, client_tls: bool) -> RawClient:
    return RawClient(w.port, "/", tls=client_tls_ctx(certs) if client_tls else None)


def client_tls_ctx(certs) -> ssl.SSLContext:
    return client_context(certs, check_hostname=False)


LEGS = pytest.mark.parametrize("client_tls,backend_tls", [(True, False), (False, True), (True, True)],
                               ids=["wss-client", "wss-backend", "wss-both"])


@LEGS
def test_half_open_client_dropped_by_keepalive(weir, peers, certs, client_tls, backend_tls):
    rb = peers.raw("echo", tls=server_ctx(certs) if backend_tls else None)
    w = start(weir, certs, rb.addr, client_tls, backend_tls, keepalive={"interval": "1s", "timeout": "1s"})
    base_fds = fd_count(w.pid)
    c = client(w, certs, client_tls)
    try:
        c.send(OP_TEXT, b"hi")
        assert c.recv_message() == (OP_TEXT, b"hi")
        t_silent = time.monotonic()  # never reads, never writes, no FIN from now on
        conn = rb.wait_conn()
        f = rb.wait_frame(conn, lambda f: f.opcode == OP_CLOSE, timeout=6)
        dt = time.monotonic() - t_silent
        assert (f.close_code, f.close_reason) == (1001, "client went away"), f
        assert dt <= 3.5, f"half-open client dropped after {dt:.2f}s (keepalive 1s + 1s)"
        cl = w.log.wait("conn.close", timeout=5)[0]
        assert cl["closed_by"] == "client", cl
    finally:
        c.close()
    assert wait_fds(w.pid, base_fds, 3) <= base_fds
    assert w.alive()


FLOOD_COUNT = 40


@LEGS
def test_never_reading_client_loses_nothing(weir, peers, certs, client_tls, backend_tls):
    """A backend floods 40 MiB at a client that reads nothing for 2 s: Weir's memory stays
    bounded (TLS buffers included), then every byte arrives intact."""
    def on_open(conn):
        for i in range(FLOOD_COUNT):
            conn.send(OP_BINARY, flood_payload(i, MiB))

    rb = peers.raw("echo", on_open=on_open, tls=server_ctx(certs) if backend_tls else None)
    w = start(weir, certs, rb.addr, client_tls, backend_tls, limits={"buffer_bytes": "64KiB"})
    time.sleep(0.2)
    base_rss = w.rss_kib()
    c = client(w, certs, client_tls)
    try:
        peak = base_rss
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            peak = max(peak, w.rss_kib())
            time.sleep(0.05)
        assert peak - base_rss < 32 * 1024, f"weir RSS grew {(peak - base_rss) / 1024:.1f} MiB"
        for i in range(FLOOD_COUNT):
            op, payload = c.recv_message(timeout=20)
            assert op == OP_BINARY and payload == flood_payload(i, MiB), f"message {i} differs"
        c.send(OP_CLOSE, close_payload(1000))
        assert c.expect_close(timeout=5).close_code == 1000
    finally:
        c.close()
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["msgs_out"] == FLOOD_COUNT, cl
    assert w.alive()


@LEGS
def test_backend_reset_inside_fragmented_message_client_gets_1011(weir, peers, certs, client_tls, backend_tls):
    go = threading.Event()

    def on_open(conn):
        conn.send(OP_BINARY, b"\x01" * MiB, fin=False)
        conn.send(OP_CONT, b"\x02" * MiB, fin=False)
        go.wait(10)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
        conn.sock.close()

    rb = peers.raw("record", on_open=on_open, tls=server_ctx(certs) if backend_tls else None)
    w = start(weir, certs, rb.addr, client_tls, backend_tls)
    base_fds = fd_count(w.pid)
    c = client(w, certs, client_tls)
    try:
        frames = []
        while sum(len(f.payload) for f in frames) < 2 * MiB:
            frames.append(c.recv_frame(timeout=5))
        t0 = time.monotonic()
        go.set()
        more, f = recv_until_close(c, timeout=3)
        dt = time.monotonic() - t0
        assert_fragments(frames + more, OP_BINARY, b"\x01" * MiB + b"\x02" * MiB)
        assert (f.close_code, f.close_reason) == (1011, "upstream connection lost")
        assert dt < 1.0, f"Close 1011 came {dt:.2f}s after the backend's reset"
        c.send(OP_CLOSE, close_payload(1011))
        wait_peer_close(c.sock, 3)
    finally:
        c.close()
    assert w.log.wait("conn.close", timeout=5)[0]["closed_by"] == "upstream"
    assert wait_fds(w.pid, base_fds, 3) <= base_fds
    assert w.alive()


@LEGS
def test_client_reset_inside_a_frame_backend_gets_fragments_then_1001(weir, peers, certs, client_tls, backend_tls):
    rb = peers.raw("record", tls=server_ctx(certs) if backend_tls else None)
    w = start(weir, certs, rb.addr, client_tls, backend_tls)
    base_fds = fd_count(w.pid)
    c = client(w, certs, client_tls)
    try:
        fr = encode_frame(OP_BINARY, b"\x05" * (8 * MiB))
        c.send_raw(fr[:14 + MiB])
        conn = rb.wait_conn()
        time.sleep(0.3)  # part of the frame has reached the backend
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
        t0 = time.monotonic()
    finally:
        c.close()
    # What arrived goes on as fragments; then a Close, not a TCP cut inside a frame.
    close = rb.wait_frame(conn, lambda f: f.opcode == OP_CLOSE, timeout=3)
    dt = time.monotonic() - t0
    assert (close.close_code, close.close_reason) == (1001, "client went away")
    assert dt < 1.0, f"Close 1001 reached the backend {dt:.2f}s after the client's reset"
    data = [f for f in conn.frames if f.opcode != OP_CLOSE]
    assert_fragments(data, OP_BINARY, b"\x05" * MiB)
    assert w.log.wait("conn.close", timeout=8)[0]["closed_by"] == "client"
    assert wait_fds(w.pid, base_fds, 3) <= base_fds
    assert w.alive()


@LEGS
@pytest.mark.parametrize("name", list(GARBAGE))
def test_backend_garbage_after_101_gets_1002(weir, peers, certs, client_tls, backend_tls, name):
    rb = peers.raw("record", on_open=lambda conn: conn.send_raw(GARBAGE[name]),
                   tls=server_ctx(certs) if backend_tls else None)
    w = start(weir, certs, rb.addr, client_tls, backend_tls)
    base_fds = fd_count(w.pid)
    c = client(w, certs, client_tls)
    try:
        f = c.expect_close(timeout=3)
        assert f.close_code == 1002, (f.close_code, f.close_reason)
        c.send(OP_CLOSE, close_payload(1002))
        wait_peer_close(c.sock, 3)
    finally:
        c.close()
    pe = w.log.wait("protocol.error", timeout=3)[0]
    assert pe["side"] == "upstream" and pe["close_code"] == 1002, pe
    w.log.wait("conn.close", timeout=5)
    assert wait_fds(w.pid, base_fds, 3) <= base_fds
    assert w.alive()


def test_tls_connect_close_churn_no_leak(weir, peers, certs):
    """1000 wss sessions to a wss backend, four at a time: no descriptor kept."""
    WARM, TOTAL = 100, 1000
    rb = peers.raw("echo", tls=server_ctx(certs))
    w = start(weir, certs, rb.addr, True, True)
    ctx = client_tls_ctx(certs)
    _churn(w.port, 0, WARM, tls=ctx)
    settle(w, WARM)
    warm_fds = fd_count(w.pid)
    _churn(w.port, WARM, TOTAL - WARM, tls=ctx)
    settle(w, TOTAL, timeout=20)
    fds = wait_fds(w.pid, warm_fds, 3)
    assert fds <= warm_fds, f"fd count grew from {warm_fds} to {fds}"
    closes = w.log.find("conn.close")
    assert len(closes) == TOTAL and all(e["close_code"] == 1000 for e in closes)
    assert w.alive()
