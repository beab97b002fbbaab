"""2. Fragmented messages and ping/pong pass through Weir frame for frame."""

import asyncio

import websockets

from aiohelp import connect, run
from weirlib import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawClient,
                     close_payload)


def test_fragmented_text_from_raw_client_reassembled_by_websockets_backend(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}])
    c = RawClient(w.port, "/frag")
    try:
        c.send(OP_TEXT, b"Hello, ", fin=False)
        c.send(OP_CONT, "wörld".encode(), fin=False)
        c.send(OP_PING, b"mid-message")  # a control frame between fragments is legal
        c.send(OP_CONT, b"!" * 300, fin=True)
        op, payload = c.recv_message(timeout=5)
        assert op == OP_TEXT
        assert payload == "Hello, wörld".encode() + b"!" * 300
        pongs = [f for f in c.controls if f.opcode == OP_PONG]
        assert [p.payload for p in pongs] == [b"mid-message"]
        c.send(OP_CLOSE, close_payload(1000))
        assert c.expect_close().close_code == 1000
    finally:
        c.close()


def test_fragmentation_preserved_to_backend_and_back(weir, peers):
    """websockets sends an iterable as fragments; the raw backend must see the same
    fragments (opcode, FIN, payload) and its fragmented echo is reassembled by the client."""
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr]}])
    parts = [b"\x00" * 10, b"\x01" * 70000, b"\x02" * 5]

    async def go():
        async with connect(w.url("/")) as ws:
            await ws.send(iter(parts))
            got = await ws.recv()
            await ws.send(iter(["ab", "cd", "é"]))
            got2 = await ws.recv()
            return got, got2

    got, got2 = run(go())
    assert got == b"".join(parts)
    assert got2 == "abcdé"
    # websockets 10.4 sends each item of the iterable as a fragment (FIN=0), then an empty
    # continuation frame with FIN=1. Frames that fit one read reach the backend exactly;
    # the 70000-byte one may span reads and then arrives re-fragmented (RFC 6455 5.4),
    # so the binary message is checked by its fragment boundaries' content.
    conn = rb.wait_conn()
    text_at = rb.wait_frame(conn, lambda f: f.opcode == OP_TEXT)
    rb.wait_frames(conn, conn.frames.index(text_at) + 4)
    frames = [f for f in conn.frames if f.opcode != OP_CLOSE]
    t = frames.index(text_at)
    binary, text = frames[:t], frames[t:t + 4]
    assert (binary[0].opcode, binary[0].fin, binary[0].payload) == (OP_BINARY, False, parts[0])
    assert all(f.opcode == OP_CONT for f in binary[1:])
    assert [f.fin for f in binary] == [False] * (len(binary) - 1) + [True]
    assert (binary[-2].payload, binary[-1].payload) == (parts[2], b"")
    assert b"".join(f.payload for f in binary[1:-2]) == parts[1]
    assert [(f.opcode, f.fin) for f in text] == [
        (OP_TEXT, False), (OP_CONT, False), (OP_CONT, False), (OP_CONT, True)]
    assert [f.payload for f in text] == [b"ab", b"cd", "é".encode(), b""]
    assert all(f.mask_key is not None for f in frames), "client->upstream frames must stay masked"


def test_client_ping_answered_by_backend(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr]}])

    async def go():
        async with connect(w.url("/")) as ws:
            waiter = await ws.ping(b"are-you-there")
            await asyncio.wait_for(waiter, 3)

    run(go())
    conn = rb.wait_conn()
    ping = rb.wait_frame(conn, lambda f: f.opcode == OP_PING)
    assert ping.payload == b"are-you-there"


def test_backend_ping_answered_by_client(weir, peers):
    """A ping from the backend reaches the client; the client's pong reaches the backend."""
    def on_open(conn):
        conn.send(OP_PING, b"from-backend")

    rb = peers.raw("echo", on_open=on_open)
    w = weir.routes([{"upstreams": [rb.addr]}])
    c = RawClient(w.port, "/")
    try:
        f = c.recv_frame(timeout=5)
        assert (f.opcode, f.payload, f.mask_key) == (OP_PING, b"from-backend", None)
        c.send(OP_PONG, b"from-backend")
        conn = rb.wait_conn()
        pong = rb.wait_frame(conn, lambda f: f.opcode == OP_PONG)
        assert pong.payload == b"from-backend"
    finally:
        c.close()


def test_websockets_client_ping_pong_via_python_backend(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}])

    async def go():
        async with connect(w.url("/")) as ws:
            for i in range(5):
                waiter = await ws.ping(f"p{i}".encode())
                await asyncio.wait_for(waiter, 3)
            await ws.send("still fine")
            return await ws.recv()

    assert run(go()) == "still fine"
