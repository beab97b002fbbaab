"""Connection limits on the real binary (local store: shared by the workers of one Weir):
per-address connect rate (the burst passes, the next gets 429 with Retry-After), per-user
concurrency (the 4th of a user is refused until one closes), a global ceiling across both
workers; limit.hit events and counters."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time

from weirlib import OP_TEXT, RawClient, build_request, new_key, read_response

SECRET = "0123456789abcdef0123456789abcdef"


def hs256(claims: dict) -> str:
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head, body = b64(b'{"alg":"HS256"}'), b64(json.dumps(claims).encode())
    return f"{head}.{body}.{b64(hmac.new(SECRET.encode(), f'{head}.{body}'.encode(), hashlib.sha256).digest())}"


def upgrade_from(source: str, port: int, headers=()):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(build_request("/", key=new_key(), headers=list(headers)))
        return read_response(s, 5)
    finally:
        s.close()


def wait_until(pred, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_per_address_connect_rate_burst_then_429(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "r", "upstreams": [rb.addr],
                      "connection_limits": [{"per": "ip", "connections_per_second": 0.2, "burst": 3}]}])
    assert [upgrade_from("127.0.0.2", w.port).status for _ in range(3)] == [101, 101, 101]
    r = upgrade_from("127.0.0.2", w.port)
    assert r.status == 429 and b"connection rate exceeded (per ip)" in r.body
    assert 1 <= int(r.header("retry-after")) <= 5  # one token per 5 s
    assert upgrade_from("127.0.0.3", w.port).status == 101  # another address has its own bucket
    ev = w.log.wait("limit.hit", timeout=5)[0]
    assert (ev["limit"], ev["per"], ev["key"], ev["action"], ev["filter"]) == \
        ("connection_rate", "ip", "127.0.0.2", "refuse", "connection_limits")
    m = w.metrics()
    assert m['weir_limit_hits_total{route="r",limit="connection_rate",per="ip"}'] == 1
    assert m['weir_handshakes_failed_total{route="r",status="429",reason="connection_limits"}'] == 1


def test_per_user_concurrency_frees_a_slot_when_a_session_ends(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr], "jwt": {"keys": [{"secret": SECRET}]},
                      "user_limits": [{"concurrent": 3}]}])
    alice = [("Authorization", "Bearer " + hs256({"sub": "alice"}))]
    held = [RawClient(w.port, "/", headers=alice) for _ in range(3)]
    try:
        r = upgrade_from("127.0.0.1", w.port, alice)
        assert r.status == 429 and b"too many concurrent connections (per user)" in r.body
        assert r.header("retry-after") == "1"
        # Another user is not affected.
        assert upgrade_from("127.0.0.1", w.port, [("Authorization", "Bearer " + hs256({"sub": "bob"}))]).status == 101
        held.pop().close()
        assert wait_until(lambda: upgrade_from("127.0.0.1", w.port, alice).status == 101)
        for c in held:  # the ones still open still relay
            c.send(OP_TEXT, b"x")
            assert c.recv_message() == (OP_TEXT, b"x")
    finally:
        for c in held:
            c.close()
    m = w.metrics()
    assert m['weir_limit_hits_total{route="chat",limit="concurrent",per="user"}'] >= 1


def test_a_global_ceiling_holds_across_both_workers(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "r", "upstreams": [rb.addr],
                      "connection_limits": [{"per": "global", "concurrent": 5}]}], workers=2)
    held, refused = [], 0
    try:
        for _ in range(12):
            try:
                held.append(RawClient(w.port, "/"))
            except AssertionError as e:
                assert "429" in str(e)
                refused += 1
        assert (len(held), refused) == (5, 7)
    finally:
        for c in held:
            c.close()
    # Every slot comes back when its session ends: five fit again (sessions end asynchronously).
    again = []

    def five_more():
        while len(again) < 5:
            try:
                again.append(RawClient(w.port, "/"))
            except AssertionError:
                return False
        return True
    try:
        assert wait_until(five_more)
        r = upgrade_from("127.0.0.1", w.port)
        assert r.status == 429 and b"(per global)" in r.body
    finally:
        for c in again:
            c.close()


def test_slowloris_pending_handshakes_per_address(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "r", "upstreams": [rb.addr]}],
                    limits={"max_pending_handshakes_per_ip": 3}, timeouts={"handshake": "30s"})

    def half_open(source):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        s.bind((source, 0))
        s.connect(("127.0.0.1", w.port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the end of the head
        return s
    slow = [half_open("127.0.0.2") for _ in range(3)]
    try:
        accepted = lambda: sum(v for k, v in w.metrics().items() if k.startswith("weir_connections_accepted_total"))
        assert wait_until(lambda: accepted() >= 3)
        s = half_open("127.0.0.2")
        try:
            try:
                assert s.recv(100) == b""  # closed unanswered (a reset: its request was unread)
            except ConnectionResetError:
                pass
        finally:
            s.close()
        assert upgrade_from("127.0.0.3", w.port).status == 101  # another address is not held up
        ev = w.log.wait("limit.hit", timeout=5)[0]
        assert (ev["limit"], ev["per"], ev["key"], ev["action"]) == ("pending_handshakes", "ip", "127.0.0.2", "close")
        slow.pop().close()  # its session sees the EOF and gives the slot back

        def admitted():
            try:
                return upgrade_from("127.0.0.2", w.port).status == 101
            except (ConnectionResetError, EOFError, AssertionError):
                return False  # still closed unanswered: the slot is not back yet
        assert wait_until(admitted)
    finally:
        for s in slow:
            s.close()
    m = w.metrics()
    assert m['weir_handshakes_failed_total{route="",status="429",reason="pending_handshakes"}'] >= 1


def test_message_rate_per_user_is_shared_by_the_users_sessions(weir, peers):
    rb = peers.raw("echo")
    # 3 messages, then one per 100 s: what one session spends the other cannot.
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr], "jwt": {"keys": [{"secret": SECRET}]},
                      "message_rate": {"messages_per_second": 0.01, "burst_messages": 3, "per": "user",
                                       "action": "drop"}}])
    alice = [("Authorization", "Bearer " + hs256({"sub": "alice"}))]
    bob = [("Authorization", "Bearer " + hs256({"sub": "bob"}))]
    s1, s2, s3 = RawClient(w.port, "/", headers=alice), RawClient(w.port, "/", headers=alice), \
        RawClient(w.port, "/", headers=bob)
    try:
        for i in range(3):
            s1.send(OP_TEXT, b"one-%d" % i)
        assert [s1.recv_message()[1] for _ in range(3)] == [b"one-0", b"one-1", b"one-2"]
        for i in range(3):
            s2.send(OP_TEXT, b"two-%d" % i)   # alice's budget is spent (on s1): dropped
        s3.send(OP_TEXT, b"bob")
        assert s3.recv_message() == (OP_TEXT, b"bob")
        assert wait_until(lambda: w.metrics().get(
            'weir_message_rate_exceeded_total{route="chat",direction="client_to_upstream",action="drop"}') == 3)
        texts = sorted(f.payload for c in rb.conns for f in c.frames if f.opcode == OP_TEXT)
        assert texts == [b"bob", b"one-0", b"one-1", b"one-2"]
    finally:
        for c in (s1, s2, s3):
            c.close()
