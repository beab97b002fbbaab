"""3. The close handshake is relayed both ways with its code and reason, and the
session_close log line says who closed and with what."""

import websockets

from aiohelp import connect, run
from weirlib import OP_CLOSE, RawClient, close_payload


def test_client_close_code_and_reason_reach_backend(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"name": "r", "upstreams": [py.addr]}])

    async def go():
        async with connect(w.url("/c")) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
            await ws.close(4001, "bye")
            return ws.close_code, ws.close_reason

    code, reason = run(go())
    ev = py.log.wait("closed", timeout=5)[0]
    assert (ev["code"], ev["reason"]) == (4001, "bye")
    # the backend's answering Close comes back to the client through Weir
    assert (code, reason) == (4001, "bye")
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["closed_by"] == "client"
    assert cl["close_code"] == 4001
    assert cl["reason"] == "bye"
    assert cl["route"] == "r"


def test_backend_close_code_and_reason_reach_client(weir, peers):
    py = peers.py("close", "--code", "4002", "--reason", "backend says bye ✓")
    w = weir.routes([{"upstreams": [py.addr]}])

    async def go():
        async with connect(w.url("/")) as ws:
            await ws.send("trigger")
            try:
                await ws.recv()
            except websockets.ConnectionClosed as e:
                return e.rcvd.code if e.rcvd else None, e.rcvd.reason if e.rcvd else None
            return "no close", None

    code, reason = run(go())
    assert (code, reason) == (4002, "backend says bye ✓")
    ev = py.log.wait("closed", timeout=5)[0]
    assert ev["code"] == 4002  # its Close was answered through Weir
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["closed_by"] == "upstream"
    assert cl["close_code"] == 4002
    assert cl["reason"] == "backend says bye ✓"


def test_close_without_status_relayed_as_such(weir, peers):
    """An empty Close payload stays empty: the backend sees 1005 (no status), not a code
    Weir made up."""
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}])
    c = RawClient(w.port, "/")
    try:
        c.send(OP_CLOSE, b"")
        f = c.expect_close(timeout=5)
        assert f.payload == b""
    finally:
        c.close()
    ev = py.log.wait("closed", timeout=5)[0]
    assert ev["code"] == 1005


def test_raw_client_close_answered_and_connection_ends(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}])
    c = RawClient(w.port, "/")
    try:
        c.send(OP_CLOSE, close_payload(1000, "normal"))
        f = c.expect_close(timeout=5)
        assert f.mask_key is None, "server-to-client frames must not be masked"
        assert (f.close_code, f.close_reason) == (1000, "normal")
        # after the close handshake Weir closes the TCP connection
        c.sock.settimeout(5)
        assert c.sock.recv(1) == b""
    finally:
        c.close()
    ev = py.log.wait("closed", timeout=5)[0]
    assert (ev["code"], ev["reason"]) == (1000, "normal")
