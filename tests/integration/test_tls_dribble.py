"""TLS records a byte at a time, both ways, many connections at once (issue: a wss relay that
stalled when every byte of a frame came as its own TLS record).

Clients write every byte of every frame as its own TLS record (one SSL_write per byte), with
a ping between the two fragments of each message; the backend (peers/dribble.py) does the
same towards Weir: each echo is two fragments with a ping of its own in between, one byte
per write. Every message must come back whole, every ping must be answered, and every
connection must close cleanly, within a bounded time: a byte that OpenSSL has buffered but
the relay does not read (a lost wake-up) shows up as a timeout here.

Legs: wss client → ws backend, wss client → wss backend, ws client → wss backend.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time

import pytest

from tlscerts import certs, client_context  # noqa: F401 (fixture)
from weirlib import (OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, PEERS_DIR, PYTHON, FrameReader,
                     Peer, accept_key, build_request, close_payload, encode_frame, make_config,
                     new_key)

# Under the sanitizers every byte costs far more: fewer connections, longer steps (the
# stall this catches is forever, not slow).
_SAN = os.environ.get("WEIR_SANITIZED") == "1"
CONNECTIONS = int(os.environ.get("WEIR_DRIBBLE_CONNECTIONS", "8" if _SAN else "32"))
MESSAGES = int(os.environ.get("WEIR_DRIBBLE_MESSAGES", "4"))
ROUNDS = int(os.environ.get("WEIR_DRIBBLE_ROUNDS", "2"))
STEP_TIMEOUT = 20.0 if _SAN else 5.0


def dribble(sock, data: bytes) -> None:
    for i in range(len(data)):
        sock.sendall(data[i:i + 1])


def payload_for(conn: int, i: int) -> bytes:
    size = (0, 1, 7, 124, 125, 126, 127, 300)[(conn + i) % 8]
    return bytes((ord("a") + (conn + i + k) % 26) for k in range(size))


def run_client(port: int, ctx: ssl.SSLContext | None, conn: int, errors: list[str]) -> None:
    raw = socket.create_connection(("127.0.0.1", port), timeout=STEP_TIMEOUT)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock = ctx.wrap_socket(raw, server_hostname="localhost") if ctx else raw
    try:
        key = new_key()
        dribble(sock, build_request("/dribble", key=key))
        buf = b""
        deadline = time.monotonic() + STEP_TIMEOUT
        while b"\r\n\r\n" not in buf:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(4096)
            if not chunk:
                raise EOFError("closed before the 101")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101") or accept_key(key).encode() not in head:
            raise AssertionError(f"bad upgrade response: {head[:200]!r}")
        reader = FrameReader(sock, rest)
        for i in range(MESSAGES):
            msg = payload_for(conn, i)
            half = len(msg) // 2
            ping = f"c{conn}-{i}".encode()
            dribble(sock, encode_frame(OP_TEXT, msg[:half], fin=False))
            dribble(sock, encode_frame(OP_PING, ping))
            dribble(sock, encode_frame(OP_CONT, msg[half:]))
            got, pong_ok, back_ping = b"", False, False
            done = False
            while not (done and pong_ok and back_ping):
                fr = reader.read_frame(timeout=STEP_TIMEOUT)
                if fr.mask_key is not None:
                    raise AssertionError("a frame from Weir to the client was masked")
                if fr.opcode == OP_PONG:
                    if fr.payload != ping:
                        raise AssertionError(f"pong {fr.payload!r}, expected {ping!r}")
                    pong_ok = True
                elif fr.opcode == OP_PING:
                    if fr.payload != b"back-ping":
                        raise AssertionError(f"unexpected ping {fr.payload!r}")
                    back_ping = True
                    dribble(sock, encode_frame(OP_PONG, fr.payload))
                elif fr.opcode in (OP_TEXT, OP_CONT):
                    got += fr.payload
                    done = fr.fin
                else:
                    raise AssertionError(f"unexpected frame opcode {fr.opcode} (payload {fr.payload[:40]!r})")
            if got != msg:
                raise AssertionError(f"message {i}: {len(got)} bytes back, expected {len(msg)}")
        dribble(sock, encode_frame(OP_CLOSE, close_payload(1000)))
        fr = reader.read_frame(timeout=STEP_TIMEOUT)
        if fr.opcode != OP_CLOSE or fr.close_code != 1000:
            raise AssertionError(f"expected Close 1000, got opcode {fr.opcode} code {fr.close_code}")
    except Exception as e:  # noqa: BLE001 - collected, asserted on below
        errors.append(f"connection {conn}: {type(e).__name__}: {e}")
    finally:
        try:
            sock.close()
        except OSError:
            pass


def storm(port: int, ctx: ssl.SSLContext | None) -> list[str]:
    errors: list[str] = []
    threads = [threading.Thread(target=run_client, args=(port, ctx, c, errors)) for c in range(CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=STEP_TIMEOUT * (MESSAGES + 4))
    if any(t.is_alive() for t in threads):
        errors.append("a client thread did not finish")
    return errors


def backend(certs, tls: bool) -> Peer:
    argv = [PYTHON, str(PEERS_DIR / "dribble.py")]
    if tls:
        argv += ["--cert", str(certs.default.cert), "--key", str(certs.default.key)]
    return Peer(argv)


@pytest.mark.parametrize("client_tls,backend_tls", [(False, False), (True, False), (True, True), (False, True)],
                         ids=["ws-to-ws", "wss-to-ws", "wss-to-wss", "ws-to-wss"])
def test_records_a_byte_at_a_time(weir, certs, client_tls, backend_tls):
    back = backend(certs, backend_tls)
    try:
        route = {"name": "dribble", "match": {"path_prefix": "/"},
                 "upstreams": [f"{'wss' if backend_tls else 'ws'}://127.0.0.1:{back.port}"]}
        if backend_tls:
            route["upstream_tls"] = {"ca": str(certs.ca)}
        listener = {"address": "127.0.0.1", "port": 0}
        if client_tls:
            listener["tls"] = {"certificates": [{"cert": str(certs.default.cert), "key": str(certs.default.key)}]}
        w = weir.start(make_config([route], listeners=[listener], workers=1))
        ctx = client_context(certs) if client_tls else None
        for r in range(ROUNDS):
            errors = storm(w.port, ctx)
            assert not errors, f"round {r}: {len(errors)} of {CONNECTIONS} connections failed:\n" + \
                "\n".join(errors[:10])
        closes = w.log.wait("conn.close", timeout=10, count=CONNECTIONS * ROUNDS)
        bad = [e for e in closes if e.get("close_code") != 1000]
        assert not bad, f"sessions not closed with 1000: {bad[:3]}"
        assert w.alive()
    finally:
        back.stop()
    assert "error" not in back.stderr.lower(), back.stderr
