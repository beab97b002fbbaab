"""Never leave a peer mid-frame: a frame cut by the loss of its sender is forwarded as
valid fragments of what arrived, then a Close (1011 towards the client, 1001 towards the
upstream) instead of a TCP cut inside a frame."""

from __future__ import annotations

import socket
import struct
import time

from test_faults import RST
from weirlib import MiB, OP_BINARY, OP_CLOSE, OP_CONT, RawClient, apply_mask, assert_fragments, recv_until_close



def big_header(length: int, opcode: int = OP_BINARY, mask: bytes | None = None) -> bytes:
    first = bytes([0x80 | opcode])
    if mask is None:
        return first + bytes([127]) + struct.pack("!Q", length)
    return first + bytes([0x80 | 127]) + struct.pack("!Q", length) + mask


def test_backend_reset_inside_a_1mib_message_client_gets_fragments_then_1011(weir, peers):
    sent = bytes((i * 7) & 0xFF for i in range(300_000))
    reset_at = []

    def on_open(conn):
        conn.send_raw(big_header(MiB) + sent)
        time.sleep(0.3)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
        reset_at.append(time.monotonic())
        conn.sock.close()

    rb = peers.raw("echo", on_open=on_open)
    w = weir.routes([{"upstreams": [rb.addr]}])
    c = RawClient(w.port, "/")
    try:
        frames, f = recv_until_close(c)
        assert_fragments(frames, OP_BINARY, sent)  # every byte that arrived, intact, in order
        assert (f.close_code, f.close_reason) == (1011, "upstream connection lost")
        assert time.monotonic() - reset_at[0] < 1.0
    finally:
        c.close()


def test_client_lost_inside_a_frame_backend_gets_fragments_then_1001(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr]}])
    c = RawClient(w.port, "/")
    key = b"\x11\x22\x33\x44"
    body = bytes((i * 13) & 0xFF for i in range(200_000))
    # The echo backend would answer each fragment: it only echoes complete frames, fine.
    c.send_raw(big_header(MiB, mask=key) + apply_mask(body, key))
    time.sleep(0.3)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
    c.close()
    conn = rb.wait_conn()
    close = rb.wait_frame(conn, lambda fr: fr.opcode == OP_CLOSE, timeout=3)
    assert (close.close_code, close.close_reason) == (1001, "client went away")
    assert_fragments([fr for fr in conn.frames if fr.opcode in (OP_BINARY, OP_CONT)], OP_BINARY, body)
