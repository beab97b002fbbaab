"""permessage-deflate (RFC 7692) terminated at Weir on inspecting routes: the client's
compressed messages are inflated (bounded by max_message_bytes: a zip bomb ends in 1009)
before the filters judge them, what goes out is compressed again on each leg that agreed
the extension, Weir negotiates its own with the backend, and Weir's own frames (pongs,
Close) are not compressed. Routes that do not inspect pass the extension through
(test_negotiation.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import zlib

import pytest
import websockets

from aiohelp import connect, run
from weirlib import (NODE_DIR, OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, FrameReader, RawClient,
                     accept_key, node_available)

OFFER = ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
TAIL = b"\x00\x00\xff\xff"
RSV1 = 4

SCHEMA = {"type": "object", "required": ["type"],
          "properties": {"type": {"enum": ["chat", "typing"]}, "text": {"type": "string"}}}


def compress(data: bytes, obj=None) -> bytes:
    c = obj or zlib.compressobj(6, zlib.DEFLATED, -15)
    z = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert z.endswith(TAIL)
    return z[:-4]


def schema_route(tmp_path, upstream, **extra):
    (tmp_path / "chat.json").write_text(json.dumps(SCHEMA))
    return {"name": "chat", "upstreams": [upstream],
            "json_schema": {"client_to_upstream": str(tmp_path / "chat.json")}, **extra}


def hdr(ev, name):
    vals = [v for k, v in ev["headers"] if k.lower() == name.lower()]
    return ", ".join(vals) if vals else None


@pytest.mark.parametrize("backend_compression", [True, False])
def test_python_client_compressed_through_json_schema(weir, peers, tmp_path, backend_compression):
    py = peers.py("echo") if backend_compression else peers.py("echo", "--no-compression")
    w = weir.routes([schema_route(tmp_path, py.addr)])
    big = json.dumps({"type": "chat", "text": "weir " * 40000})  # 200 KB, compresses well
    msgs = [json.dumps({"type": "chat", "text": "hi"}), big, json.dumps({"type": "typing", "text": "é" * 500})]

    async def go():
        async with connect(w.url("/"), compression="deflate") as ws:
            names = [e.name for e in ws.extensions]
            out = []
            for m in msgs:
                await ws.send(m)
                out.append(await ws.recv())
            # Fragmented and compressed (RSV1 on the first frame only): judged whole.
            await ws.send(['{"type":', '"chat",', '"text":"parts"}'])
            out.append(await ws.recv())
            await ws.send(['{"type":', '"nope"}'])
            try:
                await ws.recv()
            except websockets.ConnectionClosed as e:
                return names, out, e.rcvd.code if e.rcvd else None
            return names, out, None

    names, out, code = run(go(), timeout=30)
    assert names == ["permessage-deflate"]
    assert out == msgs + ['{"type":"chat","text":"parts"}']
    assert code == 1008
    ev = py.log.wait("open")[0]
    # The backend got Weir's own offer, not the client's.
    assert hdr(ev, "Sec-WebSocket-Extensions") == "permessage-deflate; client_max_window_bits=15"
    assert ev["extensions"] == (["permessage-deflate"] if backend_compression else [])
    closed = py.log.wait("closed")[0]
    assert closed["received"] == 4  # the refused message never reached it
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["bytes_in"] < 20000, cl  # compressed on the client's wire


def test_raw_client_gets_compressed_answers_and_plain_control_frames(weir, peers):
    rb = peers.raw("echo")  # answers no extension: the backend leg is plain
    w = weir.routes([{"upstreams": [rb.addr], "sanitize": {"direction": "client"}}])
    c = RawClient(w.port, "/", headers=[OFFER])
    try:
        assert c.response.header("sec-websocket-extensions") == "permessage-deflate; client_max_window_bits=15"
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        c.send(OP_TEXT, compress(b"<b>hello</b>", comp), rsv=RSV1)
        c.send(OP_TEXT, b"plain <i>", rsv=0)  # uncompressed messages stay allowed
        c.send(OP_TEXT, compress(b"<b>hello</b>", comp), rsv=RSV1)  # context takeover
        c.send(OP_PING, b"p")
        inflate = zlib.decompressobj(-15)
        got = []
        while len(got) < 3:
            f = c.recv_frame()
            if f.opcode == OP_PONG:
                assert f.rsv == 0
                continue
            assert f.opcode == OP_TEXT and f.rsv == RSV1, f
            got.append(inflate.decompress(f.payload + TAIL))
        assert got == [b"&lt;b&gt;hello&lt;/b&gt;", b"plain &lt;i&gt;", b"&lt;b&gt;hello&lt;/b&gt;"]
        conn = rb.wait_conn()
        assert conn.headers.get("sec-websocket-extensions") == "permessage-deflate; client_max_window_bits=15"
        frames = rb.wait_frames(conn, 4)
        texts = [(f.rsv, f.payload) for f in frames if f.opcode == OP_TEXT]
        assert texts == [(0, b"&lt;b&gt;hello&lt;/b&gt;"), (0, b"plain &lt;i&gt;"), (0, b"&lt;b&gt;hello&lt;/b&gt;")]
    finally:
        c.close()


def test_a_compressed_message_a_frame_filter_drops_still_feeds_the_inflater(weir, peers):
    """With context takeover a message may refer back into the one before it: a message
    that message_rate drops (a frame filter, before reassembly) must still be inflated, or the
    next one inflates wrong or fails (1007). Here the fourth message repeats the dropped third
    one, so it compresses to little more than a back-reference into it."""
    rb = peers.raw("echo")  # the backend leg stays plain
    w = weir.routes([{"upstreams": [rb.addr], "sanitize": {"direction": "client"},
                      "message_rate": {"messages_per_second": "2", "burst_messages": 2, "action": "drop"}}])
    c = RawClient(w.port, "/", headers=[OFFER])
    try:
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        third = b"the third message, which the rate limit drops: " + bytes(range(97, 123)) * 4
        for m in (b"one", b"two", third):
            c.send(OP_TEXT, compress(m, comp), rsv=RSV1)
        time.sleep(0.8)  # a token comes back
        fourth = compress(third, comp)
        assert len(fourth) < 20  # mostly a reference into the third
        c.send(OP_TEXT, fourth, rsv=RSV1)
        inflate = zlib.decompressobj(-15)
        got = []
        while len(got) < 3:
            f = c.recv_frame(timeout=5)
            assert f.opcode == OP_TEXT, (f.opcode, f.close_code, f.close_reason)
            got.append(inflate.decompress(f.payload + TAIL) if f.rsv == RSV1 else f.payload)
        assert got == [b"one", b"two", third]
        conn = rb.wait_conn()
        texts = [f.payload for f in rb.wait_frames(conn, 3) if f.opcode == OP_TEXT]
        assert texts == [b"one", b"two", third]
    finally:
        c.close()


def test_zip_bomb_ends_in_1009(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "sanitize": {}, "limits": {"max_message_bytes": 1 << 20}}])
    c = RawClient(w.port, "/", headers=[OFFER])
    try:
        bomb = compress(b"\0" * (64 << 20))  # 64 MiB of zeros in about 64 KB
        assert len(bomb) < (1 << 20)
        c.send(OP_BINARY, bomb, rsv=RSV1)
        f = c.expect_close(timeout=10)
        assert f.close_code == 1009, (f.close_code, f.close_reason)
        conn = rb.wait_conn()
        assert [f for f in conn.frames if f.opcode in (OP_TEXT, OP_BINARY, OP_CONT)] == []
    finally:
        c.close()
    ev = w.log.wait("protocol.error", timeout=5)[0]  # the client's fault, not a filter's ruling
    assert (ev["close_code"], ev["reason"]) == (1009, "message too big when inflated"), ev


@pytest.mark.parametrize("case", ["garbage", "rsv1_on_continuation", "not_negotiated"])
def test_bad_compressed_frames_close(weir, peers, case):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "sanitize": {}}])
    c = RawClient(w.port, "/", headers=[] if case == "not_negotiated" else [OFFER])
    try:
        if case == "garbage":
            c.send(OP_TEXT, b"\xff\xff\xff\xff\x00\x01", rsv=RSV1)
            want = 1007
        elif case == "rsv1_on_continuation":
            z = compress(b"hello world")
            c.send(OP_TEXT, z[:3], rsv=RSV1, fin=False)
            c.send(OP_CONT, z[3:], rsv=RSV1)
            want = 1002
        else:
            assert c.response.header("sec-websocket-extensions") in (None, "")
            c.send(OP_TEXT, compress(b"hello"), rsv=RSV1)
            want = 1002
        f = c.expect_close()
        assert f.close_code == want, (f.close_code, f.close_reason)
    finally:
        c.close()


def test_compression_disabled_negotiates_nothing(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "sanitize": {}, "compression": {"enabled": False}}])
    c = RawClient(w.port, "/", headers=[OFFER])
    try:
        assert c.response.header("sec-websocket-extensions") in (None, "")
        conn = rb.wait_conn()
        assert "sec-websocket-extensions" not in {k.lower() for k in conn.headers}
        c.send(OP_TEXT, b"<ok>")
        assert c.recv_message() == (OP_TEXT, b"&amp;lt;ok&amp;gt;")
    finally:
        c.close()


def test_route_settings_shape_the_answer(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "sanitize": {},
                      "compression": {"window_bits": 10, "peer_window_bits": 11, "context_takeover": False}}])
    c = RawClient(w.port, "/", headers=[OFFER])
    try:
        assert c.response.header("sec-websocket-extensions") == (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=11")
        conn = rb.wait_conn()
        assert conn.headers.get("sec-websocket-extensions") == (
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=11; client_max_window_bits=10")
        for _ in range(2):  # no context takeover: each message on its own
            c.send(OP_TEXT, compress(b"<x>" * 100), rsv=RSV1)
            f = c.recv_frame()
            assert f.rsv == RSV1
            assert zlib.decompressobj(-10).decompress(f.payload + TAIL) == b"&amp;lt;x&amp;gt;" * 100
    finally:
        c.close()


def bad_backend(answer: str, frames: list | None = None):
    """A backend that answers every upgrade with the given extension header (and, when
    `frames` is given, appends the frames it then reads)."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)

    def serve():
        while True:
            try:
                s, _ = ls.accept()
            except OSError:
                return
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            key = ""
            for line in buf.decode("latin-1").split("\r\n"):
                if line.lower().startswith("sec-websocket-key:"):
                    key = line.split(":", 1)[1].strip()
            s.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       f"Sec-WebSocket-Accept: {accept_key(key)}\r\n"
                       f"Sec-WebSocket-Extensions: {answer}\r\n\r\n").encode())
            if frames is not None:
                reader = FrameReader(s, buf.split(b"\r\n\r\n", 1)[1])
                try:
                    while True:
                        frames.append(reader.read_frame(10))
                except (EOFError, TimeoutError, OSError):
                    pass

    threading.Thread(target=serve, daemon=True).start()
    return ls


@pytest.mark.parametrize("answer", ["permessage-deflate; bogus=1", "permessage-deflate; server_max_window_bits=99",
                                    "permessage-deflate, permessage-deflate"])
def test_bad_backend_answer_is_502(weir, answer):
    ls = bad_backend(answer)
    try:
        w = weir.routes([{"upstreams": [f"127.0.0.1:{ls.getsockname()[1]}"], "sanitize": {}}])
        with pytest.raises(AssertionError, match="upgrade refused: 502"):
            RawClient(w.port, "/", headers=[OFFER])
    finally:
        ls.close()


def test_weir_compresses_towards_a_backend_that_agreed(weir):
    # The backend leg on its own terms: no context takeover and a 10-bit window for Weir.
    frames: list = []
    ls = bad_backend("permessage-deflate; client_no_context_takeover; client_max_window_bits=10", frames)
    try:
        w = weir.routes([{"upstreams": [f"127.0.0.1:{ls.getsockname()[1]}"], "sanitize": {}}])
        c = RawClient(w.port, "/")  # the client offers nothing: its leg is plain
        try:
            for _ in range(2):
                c.send(OP_TEXT, b"<hello> " * 50)
            deadline = time.monotonic() + 5
            while len(frames) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            c.close()
        assert len(frames) >= 2
        for f in frames[:2]:
            assert (f.opcode, f.rsv) == (OP_TEXT, RSV1) and f.mask_key is not None
            # Each message on its own (client_no_context_takeover), within a 10-bit window.
            assert zlib.decompressobj(-10).decompress(f.payload + TAIL) == b"&lt;hello&gt; " * 50
        assert frames[0].payload == frames[1].payload
    finally:
        ls.close()


def test_node_ws_client_through_an_inspecting_route(weir, peers):
    if not node_available():
        pytest.fail("node or tests/node/node_modules/ws missing: run scripts/setup test")
    py = peers.py("echo")
    # sanitize leaves the client's alphabet (letters, digits, .,;:!?-_) as it is.
    w = weir.routes([{"upstreams": [py.addr], "sanitize": {}}])
    p = subprocess.run(["node", str(NODE_DIR / "client.js"), w.url("/"), "0,1,125,5000,70000,300000"],
                       cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "WEIR_PMD": "1"})
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["ok"], (res, p.stderr)
    assert res["extensions"].startswith("permessage-deflate"), res
    assert py.log.wait("open")[0]["extensions"] == ["permessage-deflate"]
