"""Edge cases of the relay: bytes that arrive with the upgrade, frames split at every
byte, many frames in one read, the close timeout, headers spread over several lines."""

import json
import socket
import time

from weirlib import (OP_BINARY, OP_CLOSE, OP_TEXT, FrameReader, RawClient, accept_key,
                     build_request, close_payload, encode_frame, new_key, read_response,
                     wait_peer_close)


def test_frame_pipelined_with_upgrade_request(weir, peers):
    """A client may send its first frame right behind the request head, in one write."""
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}])
    key = new_key()
    with socket.create_connection(("127.0.0.1", w.port), timeout=5) as s:
        s.sendall(build_request("/", key=key) + encode_frame(OP_TEXT, b"early bird")
                  + encode_frame(OP_BINARY, b"\x00\x01"))
        r = read_response(s)
        assert r.status == 101
        assert r.header("sec-websocket-accept") == accept_key(key)
        rd = FrameReader(s, r.rest)
        f1, f2 = rd.read_frame(), rd.read_frame()
        assert (f1.opcode, f1.payload) == (OP_TEXT, b"early bird")
        assert (f2.opcode, f2.payload) == (OP_BINARY, b"\x00\x01")


def test_backend_frame_in_same_segment_as_101(weir):
    """A backend may send a frame right behind its 101, in one write."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    lsock.settimeout(10)
    import threading

    def serve():
        try:
            c, _ = lsock.accept()
        except OSError:
            return
        with c:
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = c.recv(65536)
                if not chunk:
                    return
                buf += chunk
            k = [l.split(":", 1)[1].strip() for l in buf.decode().split("\r\n")
                 if l.lower().startswith("sec-websocket-key:")][0]
            c.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_key(k)}\r\n\r\n").encode()
                      + encode_frame(OP_TEXT, b"welcome", mask=False))
            time.sleep(3)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        w = weir.routes([{"upstreams": [f"127.0.0.1:{lsock.getsockname()[1]}"]}])
        c = RawClient(w.port, "/")
        try:
            assert c.recv_message(timeout=5) == (OP_TEXT, b"welcome")
        finally:
            c.close()
    finally:
        lsock.close()


def test_frames_split_at_every_byte(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}])
    c = RawClient(w.port, "/")
    try:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = (encode_frame(OP_TEXT, b"abc") + encode_frame(OP_BINARY, bytes(200))
                + encode_frame(OP_TEXT, b"z" * 70000))
        for i in range(0, 400):
            c.send_raw(data[i:i + 1])
            time.sleep(0.001)
        c.send_raw(data[400:])
        assert c.recv_message() == (OP_TEXT, b"abc")
        assert c.recv_message() == (OP_BINARY, bytes(200))
        assert c.recv_message() == (OP_TEXT, b"z" * 70000)
    finally:
        c.close()


def test_many_frames_in_one_write(weir, peers):
    py = peers.py("echo")
    w = weir.routes([{"upstreams": [py.addr]}])
    c = RawClient(w.port, "/")
    try:
        msgs = [f"msg-{i}".encode() * (i % 7 + 1) for i in range(2000)]
        c.send_raw(b"".join(encode_frame(OP_TEXT, m) for m in msgs))
        got = [c.recv_message(timeout=10)[1] for _ in msgs]
        assert got == msgs
    finally:
        c.close()


def test_close_timeout_when_backend_never_answers_close(weir, peers):
    """After relaying a Close, Weir waits timeouts.close for the answer, then closes."""
    rb = peers.raw("record")  # records frames, never answers a Close
    w = weir.routes([{"upstreams": [rb.addr]}], timeouts={"close": "1s"})
    c = RawClient(w.port, "/")
    try:
        c.send(OP_CLOSE, close_payload(1000, "done"))
        conn = rb.wait_conn()
        f = rb.wait_frame(conn, lambda f: f.opcode == OP_CLOSE, timeout=3)
        assert f.close_code == 1000
        dt = wait_peer_close(c.sock, timeout=5)
        assert dt <= 3.0, f"client connection still open {dt:.2f}s after its Close"
    finally:
        c.close()
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["closed_by"] == "client"


def test_hop_by_hop_named_in_second_connection_header(weir, peers):
    """Connection may be sent as several header lines (RFC 9110 5.3); a header named in
    any of them is hop-by-hop and must not be forwarded."""
    py = peers.py("headers")
    w = weir.routes([{"upstreams": [py.addr]}])
    c = RawClient(w.port, "/", headers=[("Connection", "X-Hop"), ("X-Hop", "secret")])
    try:
        op, payload = c.recv_message(timeout=5)
    finally:
        c.close()
    view = json.loads(payload)
    names = [k.lower() for k, _ in view["headers"]]
    assert "x-hop" not in names, view["headers"]


def test_builtin_echo_with_frames_split_across_reads(weir):
    """The built-in echo upstream must unmask a frame whose payload arrives in
    several reads (regression: the mask was kept per read and the tail came back
    garbled once a proxy in front split frames differently)."""
    w = weir.routes([{"upstreams": ["echo"]}])
    c = RawClient(w.port, "/")
    try:
        payload = bytes((i * 7) & 0xFF for i in range(70000))
        frame = encode_frame(OP_BINARY, payload, mask=True)
        for cut in (1, 7, 5000, 40000, 69990):
            c.send_raw(frame[:cut])
            time.sleep(0.05)
            c.send_raw(frame[cut:])
            op, got = c.recv_message(timeout=5)
            assert op == OP_BINARY
            assert got == payload, f"cut at {cut}: first bad byte at {next(i for i in range(len(got)) if got[i] != payload[i])}"
    finally:
        c.close()
