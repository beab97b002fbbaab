"""7. Backend failures: down (502), refusing (502 naming its status), silent (504),
connect timeout (504), killed mid-session (client gets 1011); client vanishing
(backend gets 1001)."""

import asyncio
import socket
import time

import pytest
import websockets

from aiohelp import connect, run
from weirlib import OP_TEXT, RawClient, build_request, free_port, http_exchange


def test_backend_down_502(weir):
    port = free_port()
    w = weir.routes([{"name": "down", "upstreams": [f"127.0.0.1:{port}"]}])
    r = http_exchange(w.port, build_request("/x"))
    assert r.status == 502
    assert r.body.strip(), "the body carries the reason"
    ev = w.log.wait("handshake.reject", status=502)[0]
    assert ev["route"] == "down"


def test_backend_refuses_403_gives_502_with_status_in_body(weir, peers):
    py = peers.py("refuse", "--status", "403")
    w = weir.routes([{"upstreams": [py.addr]}])
    r = http_exchange(w.port, build_request("/x"))
    assert r.status == 502
    assert b"403" in r.body, r.body
    assert "403" in w.log.wait("handshake.reject", status=502)[0]["reason"]


def test_websockets_client_sees_502(weir, peers):
    py = peers.py("refuse", "--status", "503")
    w = weir.routes([{"upstreams": [py.addr]}])

    async def go():
        try:
            async with connect(w.url("/")):
                return None
        except websockets.InvalidStatusCode as e:
            return e.status_code

    assert run(go()) == 502


def test_silent_backend_504_after_upstream_handshake_timeout(weir, peers):
    rb = peers.raw("silent")
    w = weir.routes([{"upstreams": [rb.addr]}], timeouts={"upstream_handshake": "1s"})
    t0 = time.monotonic()
    r = http_exchange(w.port, build_request("/x"), timeout=8)
    dt = time.monotonic() - t0
    assert r.status == 504
    assert 0.8 <= dt <= 4.0, f"504 after {dt:.2f}s, upstream_handshake is 1s"
    rb.wait_conn()  # the TCP connection was made


def test_client_leaving_during_upstream_setup_ends_session_at_once(weir, peers):
    """Nothing reads the client while Weir waits for the backend's 101; a client
    that gives up must still be noticed, not held until upstream_handshake."""
    rb = peers.raw("silent")
    w = weir.routes([{"upstreams": [rb.addr]}], timeouts={"upstream_handshake": "10s"})
    s = socket.create_connection(("127.0.0.1", w.port), timeout=5)
    s.sendall(build_request("/x"))
    rb.wait_conn()  # Weir is now waiting on the backend
    t0 = time.monotonic()
    s.close()
    ev = w.log.wait("handshake.reject", status=499, timeout=3)[0]
    assert time.monotonic() - t0 < 2.0
    assert "client closed" in ev["reason"]


def _blackhole():
    """A listener whose accept queue is full: further SYNs are dropped, so a connect
    hangs until its timeout (Linux)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    time.sleep(0.2)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        probe.connect(("127.0.0.1", port))
        probe.close()
        ok = False
    except (socket.timeout, TimeoutError):
        ok = True
    except OSError:
        ok = False
    probe.close()
    return lsock, fillers, port, ok


def test_connect_timeout_504(weir):
    lsock, fillers, port, ok = _blackhole()
    try:
        if not ok:
            pytest.fail("could not make a listener that drops SYNs (kernel behaviour changed?)")
        w = weir.routes([{"upstreams": [f"127.0.0.1:{port}"]}], timeouts={"connect": "1s"})
        t0 = time.monotonic()
        r = http_exchange(w.port, build_request("/x"), timeout=8)
        dt = time.monotonic() - t0
        assert r.status == 504
        assert 0.8 <= dt <= 4.0, f"504 after {dt:.2f}s, connect timeout is 1s"
    finally:
        for s in fillers:
            s.close()
        lsock.close()


def test_failover_to_next_upstream_when_first_is_down(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [f"127.0.0.1:{free_port()}", py.addr]}])

    async def go():
        for _ in range(2):  # whichever one round robin starts with
            async with connect(w.url("/")) as ws:
                await ws.send("x")
                assert await ws.recv() == "x"

    run(go())


def test_round_robin_over_upstreams(weir, peers):
    a = peers.py("echo", "--name", "a")
    b = peers.py("echo", "--name", "b")
    w = weir.routes([{"upstreams": [a.addr, b.addr]}], workers=1)

    async def go():
        for _ in range(4):
            async with connect(w.url("/")) as ws:
                await ws.send("x")
                await ws.recv()

    run(go())
    opens = w.log.wait("conn.open", count=4)
    ups = [e["upstream"] for e in opens[:4]]
    assert sorted(ups) == sorted([a.addr, a.addr, b.addr, b.addr]), ups
    assert ups[0] != ups[1] and ups[1] != ups[2], ups


def test_backend_killed_mid_session_client_gets_1011(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}])

    async def go():
        async with connect(w.url("/")) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            py.kill()
            t0 = time.monotonic()
            try:
                await asyncio.wait_for(ws.recv(), 2.0)
            except websockets.ConnectionClosed as e:
                return e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else None, \
                    time.monotonic() - t0
            except asyncio.TimeoutError:
                return "no close within 2s", None, None
            return "got a message", None, None

    code, reason, _ = run(go())
    assert (code, reason) == (1011, "upstream connection lost")
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["closed_by"] == "upstream", cl
    assert cl["close_code"] in (1006, 1011), cl  # 1006: the upstream gave no Close


def test_backend_reset_mid_session_client_gets_1011(weir, peers):
    """The backend's socket is reset (RST, no Close): same outcome as a killed process."""
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr]}])
    c = RawClient(w.port, "/")
    try:
        c.send(OP_TEXT, b"ping")
        assert c.recv_message() == (OP_TEXT, b"ping")
        conn = rb.wait_conn()
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.sock.close()
        f = c.expect_close(timeout=2)
        assert (f.close_code, f.close_reason) == (1011, "upstream connection lost")
    finally:
        c.close()


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_client_vanishes_backend_gets_1001(weir, peers, how):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}])
    c = RawClient(w.port, "/")
    c.send(OP_TEXT, b"hi")
    assert c.recv_message() == (OP_TEXT, b"hi")
    if how == "rst":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()
    ev = py.log.wait("closed", timeout=3)[0]
    assert (ev["code"], ev["reason"]) == (1001, "client went away")
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["closed_by"] == "client"
