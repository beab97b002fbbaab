"""The inspecting pump on the real binary, through the sanitize filter (the first
on_message filter): messages reassembled, rewritten and re-framed (re-masked towards the
backend), control frames in order, binary untouched, the route's message limit as the
bound, extensions terminated at Weir, and frame filters still ruling on the same route.
`html: strip` at JSON pointers, against a Python websockets backend that records what it
got: rewritten exactly, byte for byte when nothing needs a change, fragmented messages the
same, a backend's broadcast cleaned on its way to the client, non-JSON closed with 1007."""

from __future__ import annotations

import json
import time
import zlib

import aiohelp
import websockets
from weirlib import (OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawClient, build_request,
                     http_exchange, new_key)


def data_frames(conn):
    return [(f.opcode, f.payload, f.fin) for f in conn.frames if f.opcode in (OP_TEXT, OP_BINARY, OP_CONT)]


def test_sanitize_escapes_client_text_and_reframes_it_masked(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "sanitize": {"html": "escape", "direction": "client"}}])
    c = RawClient(w.port, "/")
    try:
        c.send(OP_TEXT, b"<b onclick='x()'>hi</b> & \"you\"", mask_key=b"\x01\x02\x03\x04")
        want = b"&lt;b onclick=&#39;x()&#39;&gt;hi&lt;/b&gt; &amp; &quot;you&quot;"
        # The backend echoes; direction 'client' leaves its answer as it is.
        assert c.recv_message() == (OP_TEXT, want)
        conn = rb.wait_conn()
        f = rb.wait_frames(conn, 1)[0]
        assert (f.opcode, f.payload, f.fin) == (OP_TEXT, want, True)
        assert f.mask_key is not None and f.mask_key != b"\x01\x02\x03\x04"
        # Binary messages and text with nothing to escape pass as they are.
        c.send(OP_BINARY, b"<not text>")
        assert c.recv_message() == (OP_BINARY, b"<not text>")
        c.send(OP_TEXT, b"plain")
        assert c.recv_message() == (OP_TEXT, b"plain")
    finally:
        c.close()
    ev = w.log.wait("conn.close", timeout=5)[0]
    assert (ev["msgs_in"], ev["msgs_out"]) == (3, 3), ev


def test_fragments_are_reassembled_with_control_frames_in_order(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "sanitize": {"direction": "client"}}])
    c = RawClient(w.port, "/")
    try:
        c.send(OP_TEXT, b"<a", fin=False)
        c.send(OP_PING, b"mid")
        c.send(OP_CONT, b"", fin=False)
        c.send(OP_CONT, b"b>", fin=True)
        assert c.recv_message() == (OP_TEXT, b"&lt;ab&gt;")
        assert [(f.opcode, f.payload) for f in c.controls] == [(OP_PONG, b"mid")]
        conn = rb.wait_conn()
        rb.wait_frame(conn, lambda f: f.opcode == OP_TEXT)
        got = [(f.opcode, f.payload) for f in conn.frames]
        # The ping went on at once; the message, once whole, as one frame.
        assert got == [(OP_PING, b"mid"), (OP_TEXT, b"&lt;ab&gt;")], got
    finally:
        c.close()


def test_sanitize_towards_the_client(weir, peers):
    def on_open(conn):
        conn.send(OP_TEXT, b"<img src=x onerror=alert(1)>\x07")

    rb = peers.raw("echo", on_open=on_open)
    w = weir.routes([{"upstreams": [rb.addr],
                      "sanitize": {"direction": "upstream", "control_chars": "drop"}}])
    c = RawClient(w.port, "/")
    try:
        assert c.recv_message() == (OP_TEXT, b"&lt;img src=x onerror=alert(1)&gt;")
        # The client's own messages are not touched on their way in (the echo is, on its way out).
        c.send(OP_TEXT, b"<i>")
        assert c.recv_message() == (OP_TEXT, b"&lt;i&gt;")
        conn = rb.wait_conn()
        rb.wait_frame(conn, lambda f: f.opcode == OP_TEXT)
        assert data_frames(conn) == [(OP_TEXT, b"<i>", True)]
    finally:
        c.close()


def test_a_large_fragmented_message_is_inspected_whole(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "sanitize": {"direction": "client"}}])
    c = RawClient(w.port, "/")
    try:
        part = (b"x" * 65535) + b"<"
        n = 16  # 1 MiB in 16 fragments
        for i in range(n):
            c.send(OP_TEXT if i == 0 else OP_CONT, part, fin=i == n - 1)
        op, got = c.recv_message(timeout=10)
        want = ((b"x" * 65535) + b"&lt;") * n
        assert op == OP_TEXT and len(got) == len(want)
        bad = next((i for i in range(len(got)) if got[i] != want[i]), None)
        assert bad is None, (bad, got[bad - 8:bad + 8], want[bad - 8:bad + 8])
        conn = rb.wait_conn()
        frames = data_frames(conn)
        assert len(frames) == 1 and frames[0][1] == got
    finally:
        c.close()


def test_the_routes_message_limit_bounds_reassembly(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "sanitize": {},
                      "limits": {"max_message_bytes": "64KiB"}}])
    c = RawClient(w.port, "/")
    try:
        c.send(OP_TEXT, b"a" * 40000, fin=False)
        c.send(OP_CONT, b"b" * 40000, fin=True)
        f = c.expect_close(timeout=5)
        assert f.close_code == 1009, (f.close_code, f.close_reason)
        conn = rb.wait_conn()
        rb.wait_frame(conn, lambda fr: fr.opcode == 8)
        assert data_frames(conn) == []  # nothing of the message reached the backend
    finally:
        c.close()


def test_extensions_are_terminated_on_an_inspecting_route(weir, peers):
    # Weir answers the client's permessage-deflate offer itself and sends the backend its
    # own offer (test_deflate.py has the compressed traffic); nothing else is offered.
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "sanitize": {}}])
    ext = ("Sec-WebSocket-Extensions", "x-unknown, permessage-deflate; client_max_window_bits")
    c = RawClient(w.port, "/", headers=[ext])
    try:
        assert c.response.header("sec-websocket-extensions") == "permessage-deflate; client_max_window_bits=15"
        conn = rb.wait_conn()
        assert conn.headers.get("sec-websocket-extensions") == "permessage-deflate; client_max_window_bits=15"
        c.send(OP_TEXT, b"<ok>")  # uncompressed messages stay allowed
        # Both ways (the default): escaped on the way in, and the echo once more on the way out.
        op, payload = c.recv_message()
        assert op == OP_TEXT
        assert zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff") == b"&amp;lt;ok&amp;gt;"
    finally:
        c.close()


def test_frame_filters_still_rule_on_an_inspecting_route(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "sanitize": {"direction": "client"},
                      "message_rate": {"messages_per_second": "0.2", "burst_messages": 3, "action": "drop"}}])
    c = RawClient(w.port, "/")
    try:
        for i in range(6):
            c.send(OP_TEXT, f"<{i}>".encode())
        for i in range(3):
            assert c.recv_message() == (OP_TEXT, f"&lt;{i}&gt;".encode())
        c.send(OP_PING, b"sync")
        conn = rb.wait_conn()
        rb.wait_frame(conn, lambda f: f.opcode == OP_PING)
        assert [p for _, p, _ in data_frames(conn)] == [f"&lt;{i}&gt;".encode() for i in range(3)]
    finally:
        c.close()
    ev = w.log.wait("conn.close", timeout=5)[0]
    assert (ev["msgs_in"], ev["msgs_dropped_in"]) == (3, 3), ev


def test_python_websockets_client_through_sanitize(weir, peers):
    backend = peers.py("echo")
    w = weir.routes([{"upstreams": [backend.addr], "sanitize": {"direction": "client"}}])

    async def go():
        async with aiohelp.connect(f"ws://127.0.0.1:{w.port}/") as ws:
            await ws.send("<script>alert(1)</script>")
            assert await ws.recv() == "&lt;script&gt;alert(1)&lt;/script&gt;"
            await ws.send(b"\x00<bin>")
            assert await ws.recv() == b"\x00<bin>"
            await ws.ping(b"x")

    aiohelp.run(go())


STRIP_AT = {"html": "strip", "pointers": ["/msg/text", "/user/name"]}


def recorded(backend, count: int) -> list[str]:
    return [e["text"] for e in backend.log.wait("message", count=count)]


def test_strip_at_pointers_towards_the_backend(weir, peers):
    backend = peers.py("echo", "--record")
    w = weir.routes([{"name": "chat", "upstreams": [backend.addr],
                      "sanitize": dict(STRIP_AT, direction="client")}])
    dirty = ('{"msg":{"text":"<b onclick=\\"x()\\">hi</b><script>steal()</script> '
             '<a href=\\"jav&#x09;ascript:x\\">l</a>"},"user":{"name":"<i>bo</i><img src=x onerror=1>"},'
             '"other":"<script>not mine</script>"}')
    want = ('{"msg":{"text":"<b>hi</b> <a>l</a>"},"user":{"name":"<i>bo</i>"},'
            '"other":"<script>not mine</script>"}')
    clean = '{ "msg": {"text": "<b>fine</b> &amp; \\u00e9"}, "n": 1.50 }'  # spacing, escapes, 1.50 kept

    async def go():
        async with aiohelp.connect(f"ws://127.0.0.1:{w.port}/") as ws:
            await ws.send(dirty)
            assert await ws.recv() == want  # the echo: direction client leaves it as it is
            await ws.send(clean)
            assert await ws.recv() == clean
            await ws.send("\u00e9t\u00e9 <b>")  # not JSON on a pointers route
            try:
                await ws.recv()
            except websockets.ConnectionClosed as e:
                return e.rcvd.code if e.rcvd else None
            return "not closed"

    assert aiohelp.run(go()) == 1007
    assert recorded(backend, 2) == [want, clean]
    assert json.loads(want)["msg"]["text"] == "<b>hi</b> <a>l</a>"
    ev = backend.log.wait("closed")[0]
    assert ev["received"] == 2, ev  # the non-JSON message never reached it
    m = w.metrics()
    assert m['weir_sanitize_rewrites_total{route="chat",direction="client_to_upstream"}'] == 1
    assert m['weir_sanitize_failures_total{route="chat",direction="client_to_upstream"}'] == 1
    assert 'weir_sanitize_rewrites_total{route="chat",direction="upstream_to_client"}' not in m


def test_a_fragmented_message_is_stripped_the_same(weir, peers):
    backend = peers.py("echo", "--record")
    w = weir.routes([{"upstreams": [backend.addr], "sanitize": dict(STRIP_AT, direction="client")}])
    c = RawClient(w.port, "/")
    try:
        c.send(OP_TEXT, b'{"msg":{"text":"<i>a', fin=False)
        c.send(OP_PING, b"mid")
        c.send(OP_CONT, b"</i><img src=x ", fin=False)
        c.send(OP_CONT, b'onerror=alert(1)>\xc3\xa9"}}', fin=True)
        want = '{"msg":{"text":"<i>a</i>\u00e9"}}'
        assert c.recv_message() == (OP_TEXT, want.encode())
        assert recorded(backend, 1) == [want]
    finally:
        c.close()


def test_a_backends_broadcast_is_stripped_towards_the_client(weir, peers):
    backend = peers.py("echo", "--record")
    w = weir.routes([{"name": "feed", "upstreams": [backend.addr],
                      "sanitize": dict(STRIP_AT, direction="upstream", control_chars="drop")}])
    sent = '{"msg":{"text":"<a href=\\"javascript:x\\">l</a><b>ok</b>\\u0007<!-- c --><svg onload=x>s</svg>"}}'

    async def go():
        async with aiohelp.connect(f"ws://127.0.0.1:{w.port}/") as ws:
            await ws.send(sent)
            return await ws.recv()

    assert aiohelp.run(go()) == '{"msg":{"text":"<a>l</a><b>ok</b>"}}'
    assert recorded(backend, 1) == [sent]  # the client's own message went in as it was
    m = w.metrics()
    assert m['weir_sanitize_rewrites_total{route="feed",direction="upstream_to_client"}'] == 1


def test_non_json_on_a_pointers_route_closes_1007(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "sanitize": dict(STRIP_AT, direction="client")}])
    c = RawClient(w.port, "/")
    try:
        c.send(OP_TEXT, b"<b>not json</b>")
        f = c.expect_close(timeout=5)
        assert f.close_code == 1007 and f.close_reason.startswith("not JSON"), (f.close_code, f.close_reason)
        conn = rb.wait_conn()
        rb.wait_frame(conn, lambda fr: fr.opcode == 8)
        assert data_frames(conn) == []
    finally:
        c.close()
