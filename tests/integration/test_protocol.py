"""11. Protocol violations: the offending side gets Close 1002 (parsed from the socket),
and the other side gets a Close too."""

import pytest

from weirlib import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, RawClient, close_payload,
                     encode_frame)

VIOLATIONS = [
    ("unmasked-frame", lambda: encode_frame(OP_TEXT, b"hello", mask=False)),
    ("reserved-opcode-3", lambda: encode_frame(0x3, b"x")),
    ("reserved-opcode-11", lambda: encode_frame(0xB, b"")),
    ("rsv1-without-extension", lambda: encode_frame(OP_TEXT, b"x", rsv=4)),
    ("rsv2", lambda: encode_frame(OP_BINARY, b"x", rsv=2)),
    ("ping-126-bytes", lambda: encode_frame(OP_PING, b"p" * 126)),
    ("fragmented-ping", lambda: encode_frame(OP_PING, b"p", fin=False)),
    ("continuation-without-start", lambda: encode_frame(OP_CONT, b"x")),
    ("new-message-inside-fragmented-one",
     lambda: encode_frame(OP_TEXT, b"a", fin=False) + encode_frame(OP_BINARY, b"b")),
    ("close-code-999", lambda: encode_frame(OP_CLOSE, close_payload(999))),
    ("close-code-1005", lambda: encode_frame(OP_CLOSE, close_payload(1005))),
    ("close-code-1006", lambda: encode_frame(OP_CLOSE, close_payload(1006))),
    ("close-code-5000", lambda: encode_frame(OP_CLOSE, close_payload(5000))),
    ("close-1-byte-payload", lambda: encode_frame(OP_CLOSE, b"\x03")),
]


@pytest.fixture
def backend_weir(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}])
    return w, py


@pytest.mark.parametrize("make", [v[1] for v in VIOLATIONS], ids=[v[0] for v in VIOLATIONS])
def test_client_violation_gets_1002(backend_weir, make):
    w, py = backend_weir
    c = RawClient(w.port, "/")
    try:
        c.send(OP_TEXT, b"ok first")  # the session works before the violation
        assert c.recv_message() == (OP_TEXT, b"ok first")
        c.send_raw(make())
        f = c.expect_close(timeout=3)
        assert f.mask_key is None
        assert f.close_code == 1002, (f.close_code, f.close_reason)
    finally:
        c.close()
    ev = py.log.wait("closed", timeout=5)[0]
    assert ev["code"] not in (None, 1006), f"backend got no Close frame: {ev}"
    pe = w.log.wait("protocol.error", timeout=3)[0]
    assert pe["side"] == "client"
    assert pe["close_code"] == 1002
    assert pe["reason"]


def test_valid_close_codes_pass(backend_weir):
    """Codes a peer may send (1000-1003, 1007-1014, 3000-4999) are relayed, not refused."""
    w, py = backend_weir
    for code in (1003, 1011, 3000, 4999):
        c = RawClient(w.port, "/")
        try:
            c.send(OP_CLOSE, close_payload(code, "fine"))
            f = c.expect_close(timeout=3)
            assert f.close_code == code
        finally:
            c.close()


def test_invalid_utf8_in_close_reason_does_not_crash(backend_weir):
    w, _ = backend_weir
    c = RawClient(w.port, "/")
    try:
        c.send(OP_CLOSE, close_payload(1000) + b"\xff\xfe")
        f = c.expect_close(timeout=3)
        assert f.close_code in (1000, 1002, 1007)
    finally:
        c.close()
    assert w.alive()


BACKEND_VIOLATIONS = [
    ("masked-server-frame", lambda conn: conn.send(OP_TEXT, b"masked", mask=True)),
    ("reserved-opcode", lambda conn: conn.send(0x3, b"x")),
    ("continuation-without-start", lambda conn: conn.send(OP_CONT, b"x")),
    ("ping-126-bytes", lambda conn: conn.send(OP_PING, b"p" * 126)),
]


@pytest.mark.parametrize("act", [v[1] for v in BACKEND_VIOLATIONS], ids=[v[0] for v in BACKEND_VIOLATIONS])
def test_backend_violation_backend_gets_1002(weir, peers, act):
    rb = peers.raw("record")
    w = weir.routes([{"upstreams": [rb.addr]}])
    c = RawClient(w.port, "/")
    try:
        conn = rb.wait_conn()
        act(conn)
        f = rb.wait_frame(conn, lambda f: f.opcode == OP_CLOSE, timeout=3)
        assert f.close_code == 1002, (f.close_code, f.close_reason)
        c.expect_close(timeout=3)  # the client gets a Close frame too (not just a dropped socket)
    finally:
        c.close()
    pe = w.log.wait("protocol.error", timeout=3)[0]
    assert pe["side"] == "upstream"
