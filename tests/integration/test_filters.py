"""Filters on the real binary: origin refusals name their filter, message_rate with each
action (close -> 1008, drop -> exactly the excess missing at the backend and counted,
throttle -> every message arrives, later), max_message per direction (1009)."""

from __future__ import annotations

import time

from weirlib import (OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawClient, build_request, encode_frame,
                     http_exchange, new_key)


def test_origin_refusal_names_the_filter(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "origins": ["https://ok.example"]}])
    r = http_exchange(w.port, build_request("/", key=new_key(), headers=[("Origin", "https://evil.example")]))
    assert r.status == 403
    ev = w.log.wait("handshake.reject", timeout=5)[0]
    assert (ev["status"], ev["filter"], ev["reason"]) == (403, "origins", "origin not allowed"), ev
    c = RawClient(w.port, "/", headers=[("Origin", "https://OK.example")])
    c.send(OP_TEXT, b"in")
    assert c.recv_message() == (OP_TEXT, b"in")
    c.close()


def test_message_rate_close_sends_1008(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr],
                      "message_rate": {"messages_per_second": "0.5", "burst_messages": 3}}])
    c = RawClient(w.port, "/")
    try:
        for i in range(3):
            c.send(OP_TEXT, f"m{i}".encode())
            assert c.recv_message() == (OP_TEXT, f"m{i}".encode())
        c.send(OP_TEXT, b"one too many")
        f = c.expect_close(timeout=3)
        assert (f.close_code, f.close_reason) == (1008, "message rate exceeded")
        conn = rb.wait_conn()
        close = rb.wait_frame(conn, lambda fr: fr.opcode == 8, timeout=3)
        assert close.close_code == 1008, close
        assert [fr.payload for fr in conn.frames if fr.opcode == OP_TEXT] == [b"m0", b"m1", b"m2"]
        ev = w.log.wait("limit.hit", timeout=5)[0]
        assert (ev["filter"], ev["close_code"], ev["side"]) == ("message_rate", 1008, "client"), ev
        m = w.metrics()
        assert m['weir_message_rate_exceeded_total{route="route1",direction="client_to_upstream",action="close"}'] == 1
    finally:
        c.close()


def test_message_rate_drop_loses_exactly_the_excess_and_counts_it(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr],
                      "message_rate": {"messages_per_second": "0.2", "burst_messages": 5, "action": "drop"}}])
    c = RawClient(w.port, "/")
    for i in range(20):
        c.send(OP_TEXT, f"m{i}".encode())
    # A fragmented message over the rate is dropped whole; a ping inside it still passes.
    c.send(OP_BINARY, b"frag-a", fin=False)
    c.send(OP_PING, b"alive")
    c.send(OP_CONT, b"frag-b", fin=True)
    conn = rb.wait_conn()
    rb.wait_frame(conn, lambda fr: fr.opcode == OP_PING, timeout=5)
    time.sleep(0.3)
    data = [fr.payload for fr in conn.frames if fr.opcode in (OP_TEXT, OP_BINARY, OP_CONT)]
    assert data == [f"m{i}".encode() for i in range(5)], data
    for i in range(5):
        assert c.recv_message() == (OP_TEXT, f"m{i}".encode())
    c.close()
    ev = w.log.wait("conn.close", timeout=5)[0]
    assert (ev["msgs_in"], ev["msgs_dropped_in"]) == (5, 16), ev


def test_message_rate_throttle_delivers_everything_later(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr],
                      "message_rate": {"messages_per_second": 20, "burst_messages": 5, "action": "throttle"}}])
    c = RawClient(w.port, "/")
    t0 = time.monotonic()
    for i in range(40):
        c.send(OP_TEXT, f"m{i}".encode())
    for i in range(40):
        assert c.recv_message(timeout=10) == (OP_TEXT, f"m{i}".encode())
    elapsed = time.monotonic() - t0
    # 35 messages over the burst at 20/s: at least ~1.75 s; none lost, in order.
    assert elapsed >= 1.5, elapsed
    conn = rb.wait_conn()
    assert [fr.payload for fr in conn.frames if fr.opcode == OP_TEXT] == [f"m{i}".encode() for i in range(40)]
    c.close()
    ev = w.log.wait("conn.close", timeout=5)[0]
    assert (ev["msgs_in"], ev["msgs_dropped_in"]) == (40, 0), ev


def test_throttled_client_is_not_dropped_by_keepalive(weir, peers):
    """While Weir holds a throttled client's frames it reads nothing from it, so that
    client's pong waits unread: the keepalive must not take it for dead. (This also caught
    a ping towards the upstream, flushed on its own, wiping the bytes the pump held.)"""
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "keepalive": {"interval": "300ms", "timeout": "300ms"},
                      "message_rate": {"bytes_per_second": "1KiB", "burst_bytes": "1KiB",
                                       "action": "throttle"}}])
    c = RawClient(w.port, "/")
    try:
        msgs = [bytes([65 + i]) * 1024 for i in range(4)]  # ~3 s of throttling
        for m in msgs:
            c.send(OP_BINARY, m)
        got = []
        while len(got) < len(msgs):
            got.append(c.recv_message(timeout=10))
            for f in c.controls:
                if f.opcode == OP_PING:
                    c.send(OP_PONG, f.payload)
            c.controls.clear()
        assert got == [(OP_BINARY, m) for m in msgs]
    finally:
        c.close()
    ev = w.log.wait("conn.close", timeout=5)[0]
    assert ev["closed_by"] == "client", ev


def test_partial_header_survives_a_keepalive_ping_towards_the_upstream(weir, peers):
    """The pump carries an incomplete frame header between reads; a keepalive ping Weir
    sends the upstream in between is flushed on its own and must leave those bytes alone."""
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "keepalive": {"interval": "200ms", "timeout": "3s"}}])
    c = RawClient(w.port, "/")
    try:
        frame = encode_frame(OP_TEXT, b"whole", mask_key=b"\x01\x02\x03\x04")
        c.send_raw(frame[:3])  # part of the header: carried by the pump
        conn = rb.wait_conn()
        rb.wait_frame(conn, lambda f: f.opcode == OP_PING, timeout=3)  # a ping went out meanwhile
        c.send_raw(frame[3:])
        assert c.recv_message(timeout=3) == (OP_TEXT, b"whole")
    finally:
        c.close()


def test_message_rate_bytes_per_second_close(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "message_rate": {"bytes_per_second": "1KiB", "burst_bytes": "4KiB"}}])
    c = RawClient(w.port, "/")
    c.send(OP_BINARY, b"x" * 3000)
    assert c.recv_message() == (OP_BINARY, b"x" * 3000)
    c.send(OP_BINARY, b"y" * 2000)
    f = c.expect_close(timeout=3)
    assert f.close_code == 1008
    c.close()


def test_max_message_per_direction(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr], "max_message": {"client_to_upstream": "1KiB"}}])
    c = RawClient(w.port, "/")
    # Upstream to client is not limited by it.
    conn = rb.wait_conn()
    conn.send(OP_BINARY, b"d" * 65536)
    assert c.recv_message() == (OP_BINARY, b"d" * 65536)
    c.send(OP_BINARY, b"u" * 1024)
    assert c.recv_message() == (OP_BINARY, b"u" * 1024)
    # Over the limit across fragments: 1009 before a byte of the offending frame goes on.
    c.send(OP_BINARY, b"a" * 600, fin=False)
    c.send(OP_CONT, b"b" * 600, fin=True)
    f = c.expect_close(timeout=3)
    assert (f.close_code, f.close_reason) == (1009, "message too big")
    close = rb.wait_frame(conn, lambda fr: fr.opcode == 8, timeout=3)
    assert close.close_code == 1009
    assert not any(fr.payload.startswith(b"b") for fr in conn.frames)
    c.close()
    # The filter's own counter (declared beside its code), and the generic one.
    m = w.metrics()
    assert m['weir_max_message_exceeded_total{route="route1",direction="client_to_upstream"}'] == 1
    assert m['weir_max_message_exceeded_total{route="route1",direction="upstream_to_client"}'] == 0
    assert m['weir_filter_closes_total{route="route1",filter="max_message"}'] == 1
