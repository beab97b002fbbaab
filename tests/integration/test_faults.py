"""Fault injection with the real binary and real peers: slowloris, half-open clients, a
client that never reads, backends that reset or send garbage, connection churn, running out
of file descriptors. Each test checks that Weir survives, gives back what it held (fd count
from /proc/PID/fd, RSS from /proc/PID/status) and tells the other side with the right code.

(A backend that accepts TCP but never answers the handshake -> 504 is already covered by
test_failures.py::test_silent_backend_504_after_upstream_handshake_timeout.)
"""

from __future__ import annotations

import os
import resource
import selectors
import signal
import socket
import subprocess
import threading
import time

import pytest

from weirlib import (SANITIZED, MiB, OP_BINARY, OP_CLOSE, OP_CONT, OP_TEXT, PYTHON, FrameReader, RawClient,
                     assert_fragments, build_request, close_payload, encode_frame, flood_payload,
                     read_response, recv_until_close, wait_peer_close)

HERE = os.path.dirname(os.path.abspath(__file__))


# --------------------------------------------------------------------------- helpers


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_fds(pid: int, at_most: int, timeout: float) -> int:
    """Poll until the process holds at most `at_most` descriptors; return the last count."""
    deadline = time.monotonic() + timeout
    while True:
        n = fd_count(pid)
        if n <= at_most or time.monotonic() >= deadline:
            return n
        time.sleep(0.05)


def echo_once(port: int, payload: bytes = b"hello", path: str = "/") -> None:
    """A whole session: upgrade, one echo, close handshake, TCP closed by the server."""
    c = RawClient(port, path)
    try:
        c.send(OP_TEXT, payload)
        assert c.recv_message(timeout=5) == (OP_TEXT, payload)
        c.send(OP_CLOSE, close_payload(1000))
        assert c.expect_close(timeout=5).close_code == 1000
        wait_peer_close(c.sock, 3)
    finally:
        c.close()


def settle(w, sessions: int, timeout: float = 10.0) -> None:
    """Wait until `sessions` session_close lines were logged (the sessions are freed)."""
    w.log.wait("conn.close", count=sessions, timeout=timeout)
    time.sleep(0.2)


RST = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {1, 0}: close() sends a RST


# --------------------------------------------------------------------------- slowloris


def test_slowloris_closed_at_handshake_timeout(weir, peers):
    N = 1000
    py = peers.py("echo", "--no-compression")
    w = weir.routes([{"upstreams": [py.addr]}], timeouts={"handshake": "2s"})
    echo_once(w.port)  # warm up (buffers, upstream path)
    settle(w, 1)
    base_fds, base_rss = fd_count(w.pid), w.rss_kib()
    mark = w.log.mark()

    # A normal client echoes all along, in its own thread.
    normal = {"ok": 0, "error": None, "worst": 0.0}
    stop = threading.Event()

    def normal_client():
        try:
            c = RawClient(w.port, "/")
            try:
                i = 0
                while not stop.is_set():
                    t0 = time.monotonic()
                    c.send(OP_TEXT, f"m{i}".encode())
                    assert c.recv_message(timeout=3) == (OP_TEXT, f"m{i}".encode())
                    normal["worst"] = max(normal["worst"], time.monotonic() - t0)
                    normal["ok"] += 1
                    i += 1
                    time.sleep(0.05)
            finally:
                c.close()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            normal["error"] = repr(e)

    request = build_request("/slow")
    sel = selectors.DefaultSelector()
    socks: dict[socket.socket, dict] = {}
    for _ in range(N):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", w.port))
        socks[s] = {"t0": time.monotonic(), "sent": 0, "closed": None, "data": b""}
        sel.register(s, selectors.EVENT_READ)
    nt = threading.Thread(target=normal_client, daemon=True)
    nt.start()
    try:
        open_ = set(socks)
        next_tick = time.monotonic()
        deadline = time.monotonic() + 10
        while open_ and time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_tick:  # one more byte of the request on every open connection
                next_tick += 1.0
                for s in list(open_):
                    st = socks[s]
                    if st["sent"] < len(request):
                        try:
                            st["sent"] += s.send(request[st["sent"]:st["sent"] + 1])
                        except BlockingIOError:
                            pass
                        except OSError:
                            st["closed"] = time.monotonic()
                            open_.discard(s)
                            sel.unregister(s)
            for key, _ in sel.select(timeout=0.05):
                s = key.fileobj
                st = socks[s]
                try:
                    chunk = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    st["data"] += chunk
                    continue
                st["closed"] = time.monotonic()
                open_.discard(s)
                sel.unregister(s)
        still_open = len(open_)
    finally:
        stop.set()
        nt.join(timeout=5)
        for s in socks:
            s.close()
        sel.close()

    assert still_open == 0, f"{still_open}/{N} slowloris connections still open after 10 s"
    ages = sorted(st["closed"] - st["t0"] for st in socks.values())
    print(f"slowloris: closed after {ages[0]:.2f}..{ages[-1]:.2f} s; normal client "
          f"{normal['ok']} echoes, worst {normal['worst'] * 1000:.0f} ms")
    assert ages[0] >= 1.5, f"a slowloris connection was closed after {ages[0]:.2f}s (handshake timeout 2s)"
    assert ages[-1] <= 4.0, f"a slowloris connection lasted {ages[-1]:.2f}s (handshake timeout 2s)"
    answered = [st["data"][:60] for st in socks.values() if st["data"]]
    assert not answered, f"{len(answered)} got bytes back (408 is closed without a response): {answered[:3]}"
    assert normal["error"] is None, f"the normal client failed during the slowloris: {normal['error']}"
    assert normal["ok"] >= 20, f"the normal client only echoed {normal['ok']} messages"
    assert normal["worst"] < 1.0, f"an echo took {normal['worst']:.2f}s during the slowloris"

    refused = w.log.wait("handshake.reject", since=mark, count=N, timeout=5, status=408)
    assert len(refused) == N, f"{len(refused)} '408' refused lines for {N} slowloris connections"
    settle(w, 2)  # the normal client's session is gone too
    fds = wait_fds(w.pid, base_fds, 3)
    assert fds <= base_fds, f"weir holds {fds} fds after the slowloris, {base_fds} before"
    rss = w.rss_kib()
    assert rss - base_rss < 16 * 1024, f"RSS +{(rss - base_rss) / 1024:.1f} MiB after the slowloris"
    assert w.alive()


# --------------------------------------------------------------------------- half-open clients

_SIGSTOP_CLIENT = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
from weirlib import RawClient, OP_TEXT, OP_PING, OP_PONG
c = RawClient(int(sys.argv[1]), "/")
c.send(OP_TEXT, b"hi")
assert c.recv_message() == (OP_TEXT, b"hi")
print("ready", flush=True)
while True:  # a well-behaved client: answers every ping, until it is stopped
    try:
        f = c.recv_frame(timeout=60)
    except Exception:
        break
    if f.opcode == OP_PING:
        c.send(OP_PONG, f.payload)
        print("pong", flush=True)
"""


@pytest.mark.parametrize("how", ["stops-reading", "sigstop"])
def test_half_open_client_dropped_by_keepalive(weir, peers, how):
    py = peers.py("echo", "--no-compression")
    w = weir.routes([{"upstreams": [py.addr], "keepalive": {"interval": "1s", "timeout": "1s"}}])
    echo_once(w.port)
    settle(w, 1)
    base_fds = fd_count(w.pid)
    py.log.wait("closed", timeout=3)

    proc = None
    c = None
    try:
        if how == "stops-reading":
            c = RawClient(w.port, "/")
            c.send(OP_TEXT, b"hi")
            assert c.recv_message() == (OP_TEXT, b"hi")
            t_silent = time.monotonic()  # from now on: never reads, never writes, no FIN
        else:
            proc = subprocess.Popen([PYTHON, "-c", _SIGSTOP_CLIENT, str(w.port), HERE],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert proc.stdout.readline().strip() == b"ready", proc.stderr.read1(4000)
            # It answers pings while running: still open after 2.5 s (> interval + timeout).
            time.sleep(2.5)
            assert len(py.log.find("closed")) == 1, "a client that answers pings was dropped"
            proc.send_signal(signal.SIGSTOP)
            t_silent = time.monotonic()
        ev = py.log.wait("closed", count=2, timeout=6)[1]
        dt = time.monotonic() - t_silent
        assert (ev["code"], ev["reason"]) == (1001, "client went away"), ev
        assert dt <= 3.5, f"half-open client dropped after {dt:.2f}s (keepalive interval 1s + timeout 1s)"
        cl = w.log.wait("conn.close", count=2, timeout=5)[1]
        assert cl["closed_by"] == "client", cl
        fds = wait_fds(w.pid, base_fds, 3)
        assert fds <= base_fds, f"weir holds {fds} fds after dropping the half-open client, {base_fds} before"
        assert w.alive()
    finally:
        if c:
            c.close()
        if proc:
            proc.kill()  # SIGKILL also ends a stopped process
            proc.wait(timeout=5)


# --------------------------------------------------------------------------- client that never reads

FLOOD_COUNT = 100
FLOOD_SIZE = 1 * MiB


def test_never_reading_client_pauses_backend_and_loses_nothing(weir, peers):
    py = peers.py("flood", "--count", str(FLOOD_COUNT), "--size", str(FLOOD_SIZE), "--no-compression")
    w = weir.routes([{"upstreams": [py.addr]}], limits={"buffer_bytes": "64KiB"})
    time.sleep(0.2)
    base_fds, base_rss = fd_count(w.pid), w.rss_kib()
    c = RawClient(w.port, "/")  # does not read until told
    try:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        peak = base_rss
        samples = {}
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.0:
            peak = max(peak, w.rss_kib())
            el = time.monotonic() - t0
            samples[round(el, 1)] = len(py.log.find("sent"))
            time.sleep(0.05)
        sent_2s = max(v for k, v in samples.items() if k <= 2.0)
        sent_3s = len(py.log.find("sent"))
        print(f"never-reading client: backend sent {sent_2s} MiB at 2 s, {sent_3s} MiB at 3 s of "
              f"{FLOOD_COUNT}; weir RSS +{(peak - base_rss) / 1024:.1f} MiB")
        assert peak - base_rss < 32 * 1024, \
            f"weir RSS grew {(peak - base_rss) / 1024:.1f} MiB while the client read nothing"
        assert sent_3s <= FLOOD_COUNT // 3, \
            f"backend sent {sent_3s}/{FLOOD_COUNT} MiB to a client that read nothing: no backpressure"
        assert sent_3s - sent_2s <= 1, \
            f"backend still sending while the client reads nothing ({sent_2s} -> {sent_3s} MiB in 1 s)"

        total = 0
        for i in range(FLOOD_COUNT):
            op, payload = c.recv_message(timeout=20)
            assert op == OP_BINARY
            assert len(payload) == FLOOD_SIZE, f"message {i}: {len(payload)} bytes"
            if payload != flood_payload(i, FLOOD_SIZE):
                idx = int.from_bytes(payload[:4], "big")
                bad = next(j for j in range(FLOOD_SIZE) if payload[j] != flood_payload(i, FLOOD_SIZE)[j])
                raise AssertionError(f"message {i}: wrong content (index {idx}, first bad byte at {bad})")
            total += len(payload)
            if i % 10 == 0:
                peak = max(peak, w.rss_kib())
        assert total == FLOOD_COUNT * FLOOD_SIZE
        assert peak - base_rss < 32 * 1024, f"weir RSS grew {(peak - base_rss) / 1024:.1f} MiB"
        assert len(py.log.wait("sent", count=FLOOD_COUNT, timeout=5)) == FLOOD_COUNT
        c.send(OP_CLOSE, close_payload(1000))
        assert c.expect_close(timeout=5).close_code == 1000
    finally:
        c.close()
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["msgs_out"] == FLOOD_COUNT, cl
    fds = wait_fds(w.pid, base_fds, 3)
    assert fds <= base_fds, f"weir holds {fds} fds after the session, {base_fds} before"
    assert w.alive()


# --------------------------------------------------------------------------- backend reset mid-message


def test_backend_reset_inside_fragmented_message_client_gets_1011(weir, peers):
    """The backend sends two 1 MiB fragments of a message, then resets: the message can
    never be completed; the client gets everything sent (as fragments: frames that span
    reads are re-fragmented), then Close 1011, promptly."""
    go = threading.Event()

    def on_open(conn):
        conn.send(OP_BINARY, b"\x01" * MiB, fin=False)
        conn.send(OP_CONT, b"\x02" * MiB, fin=False)
        go.wait(10)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
        conn.sock.close()

    rb = peers.raw("record", on_open=on_open)
    w = weir.routes([{"upstreams": [rb.addr]}])
    base_fds = fd_count(w.pid)
    c = RawClient(w.port, "/")
    try:
        frames = []
        while sum(len(f.payload) for f in frames) < 2 * MiB:
            frames.append(c.recv_frame(timeout=5))
        t0 = time.monotonic()
        go.set()
        more, f = recv_until_close(c, timeout=3)
        dt = time.monotonic() - t0
        assert_fragments(frames + more, OP_BINARY, b"\x01" * MiB + b"\x02" * MiB)
        assert (f.close_code, f.close_reason) == (1011, "upstream connection lost")
        assert dt < 1.0, f"Close 1011 came {dt:.2f}s after the backend's reset"
        c.send(OP_CLOSE, close_payload(1011))
        wait_peer_close(c.sock, 3)
    finally:
        c.close()
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["closed_by"] == "upstream", cl
    fds = wait_fds(w.pid, base_fds, 3)
    assert fds <= base_fds, f"weir holds {fds} fds, {base_fds} before"
    assert w.alive()


def test_backend_reset_inside_a_frame_client_gets_fragments_then_1011(weir, peers):
    """The backend resets in the middle of one large frame (8 MiB announced, 1 MiB sent).
    Weir forwarded what arrived as fragments, so the stream is between frames and the
    client gets Close 1011 promptly, after exactly the bytes the backend sent."""
    go = threading.Event()
    header = bytes([0x82, 127]) + (8 * MiB).to_bytes(8, "big")

    def on_open(conn):
        conn.send_raw(header + b"\x07" * MiB)
        go.wait(10)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
        conn.sock.close()

    rb = peers.raw("record", on_open=on_open)
    w = weir.routes([{"upstreams": [rb.addr]}])
    base_fds = fd_count(w.pid)
    c = RawClient(w.port, "/")
    try:
        frames = []
        while sum(len(f.payload) for f in frames) < MiB:
            frames.append(c.recv_frame(timeout=5))
        t0 = time.monotonic()
        go.set()
        more, f = recv_until_close(c, timeout=3)
        dt = time.monotonic() - t0
        assert_fragments(frames + more, OP_BINARY, b"\x07" * MiB)
        assert (f.close_code, f.close_reason) == (1011, "upstream connection lost")
        assert dt < 1.0, f"Close 1011 came {dt:.2f}s after the backend's reset"
    finally:
        c.close()
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["closed_by"] == "upstream", cl
    fds = wait_fds(w.pid, base_fds, 3)
    assert fds <= base_fds, f"weir holds {fds} fds, {base_fds} before"
    assert w.alive()


def test_client_reset_inside_a_frame_backend_closed_promptly(weir, peers):
    """The mirror case: a client resets in the middle of a large frame it is sending.
    The backend gets what arrived as fragments, then Close 1001, and its connection
    ends promptly (a real peer answers the Close)."""
    py = peers.py("echo", "--no-compression")
    w = weir.routes([{"upstreams": [py.addr]}])
    base_fds = fd_count(w.pid)
    c = RawClient(w.port, "/")
    try:
        fr = encode_frame(OP_BINARY, b"\x05" * (8 * MiB))
        c.send_raw(fr[:14 + MiB])
        py.log.wait("open", timeout=3)
        time.sleep(0.3)  # the partial frame has reached the backend
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
        t0 = time.monotonic()
    finally:
        c.close()
    ev = py.log.wait("closed", timeout=8)[0]
    dt = time.monotonic() - t0
    assert dt < 1.0, f"backend connection ended {dt:.2f}s after the client's reset mid-frame ({ev})"
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["closed_by"] == "client", cl
    fds = wait_fds(w.pid, base_fds, 3)
    assert fds <= base_fds, f"weir holds {fds} fds, {base_fds} before"
    assert w.alive()


# --------------------------------------------------------------------------- garbage after 101

GARBAGE = {
    "ff-bytes": b"\xff" * 64,
    "http-text": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "zero-length-opcode-3": b"\x83\x00" + b"\x00" * 30,
}


@pytest.mark.parametrize("name", list(GARBAGE))
def test_backend_garbage_after_101(weir, peers, name):
    rb = peers.raw("record", on_open=lambda conn: conn.send_raw(GARBAGE[name]))
    w = weir.routes([{"upstreams": [rb.addr]}])
    base_fds = fd_count(w.pid)
    c = RawClient(w.port, "/")
    try:
        f = c.expect_close(timeout=3)
        # Every garbage here breaks framing (RSV bits without an extension, a reserved
        # opcode): a protocol error, 1002, not an internal one.
        assert f.close_code == 1002, (f.close_code, f.close_reason)
        c.send(OP_CLOSE, close_payload(f.close_code))
        wait_peer_close(c.sock, 3)
    finally:
        c.close()
    pe = w.log.wait("protocol.error", timeout=3)[0]
    assert pe["side"] == "upstream", pe
    w.log.wait("conn.close", timeout=5)
    fds = wait_fds(w.pid, base_fds, 3)
    assert fds <= base_fds, f"weir holds {fds} fds, {base_fds} before"
    assert w.alive()


# --------------------------------------------------------------------------- connection churn


def _cycle(port: int, i: int, tls=None) -> None:
    """One session: upgrade, one echo, close handshake, TCP closed by the server.
    tls: a client SSLContext to speak wss://."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        s = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
        s.sendall(build_request("/churn"))
        r = read_response(s, 5)
        assert r.status == 101, r.status
        rd = FrameReader(s, r.rest)
        msg = f"cycle {i}".encode()
        s.sendall(encode_frame(OP_TEXT, msg))
        f = rd.read_frame(5)
        assert (f.opcode, f.payload) == (OP_TEXT, msg), f
        s.sendall(encode_frame(OP_CLOSE, close_payload(1000)))
        f = rd.read_frame(5)
        assert f.opcode == OP_CLOSE and f.close_code == 1000, f
        wait_peer_close(s, 5)


def _churn(port: int, start: int, count: int, threads: int = 4, tls=None) -> None:
    errors: list[str] = []
    lock = threading.Lock()
    nxt = [start]

    def run():
        while True:
            with lock:
                if errors or nxt[0] >= start + count:
                    return
                i = nxt[0]
                nxt[0] += 1
            try:
                _cycle(port, i, tls)
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(f"cycle {i}: {e!r}")
                return

    ts = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    assert not errors, errors[:3]
    assert nxt[0] >= start + count, "churn did not finish in time"


def test_connect_close_churn_no_leak(weir, peers):
    WARM, TOTAL = 500, 5000
    py = peers.py("echo", "--no-compression")
    w = weir.routes([{"upstreams": [py.addr]}])
    t0 = time.monotonic()
    _churn(w.port, 0, WARM)
    settle(w, WARM)
    warm_fds, warm_rss = fd_count(w.pid), w.rss_kib()
    _churn(w.port, WARM, TOTAL - WARM)
    settle(w, TOTAL, timeout=20)
    fds = wait_fds(w.pid, warm_fds, 3)
    rss = w.rss_kib()
    print(f"churn: {TOTAL} cycles in {time.monotonic() - t0:.1f}s; fds {warm_fds} -> {fds}; "
          f"RSS {warm_rss / 1024:.1f} -> {rss / 1024:.1f} MiB")
    assert fds <= warm_fds, f"fd count grew from {warm_fds} to {fds} over {TOTAL - WARM} cycles"
    # Under ASan freed memory sits in its quarantine, so RSS says nothing there;
    # LeakSanitizer checks the same thing at exit instead.
    if not SANITIZED:
        assert rss - warm_rss < 8 * 1024, f"RSS grew {(rss - warm_rss) / 1024:.1f} MiB over {TOTAL - WARM} cycles"
    closes = w.log.find("conn.close")
    assert len(closes) == TOTAL
    assert all(e["close_code"] == 1000 for e in closes), \
        [e for e in closes if e["close_code"] != 1000][:3]
    assert w.alive()


# --------------------------------------------------------------------------- out of file descriptors


def _try_upgrade(port: int):
    """(status, socket or None): the socket stays open when the upgrade succeeded."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(build_request("/"))
        r = read_response(s, 5)
    except (EOFError, ConnectionError, TimeoutError) as e:
        s.close()
        return repr(e), None
    if r.status != 101:
        s.close()
        return r.status, r
    return 101, (s, FrameReader(s, r.rest))


def _echo(conn, msg: bytes) -> None:
    s, rd = conn
    s.sendall(encode_frame(OP_TEXT, msg))
    f = rd.read_frame(5)
    assert (f.opcode, f.payload) == (OP_TEXT, msg), f


def _close(conn) -> None:
    s, rd = conn
    try:
        s.sendall(encode_frame(OP_CLOSE, close_payload(1000)))
        while rd.read_frame(5).opcode != OP_CLOSE:
            pass
        wait_peer_close(s, 3)
    finally:
        s.close()


@pytest.mark.skipif(SANITIZED, reason="the sanitizers' own checks need descriptors (UBSan's vptr "
                    "check opens a pipe) and report false errors when none are left")
def test_out_of_file_descriptors_503(weir, peers):
    LIMIT = 64
    py = peers.py("echo", "--no-compression")
    w = weir.routes([{"upstreams": [py.addr]}])
    resource.prlimit(w.pid, resource.RLIMIT_NOFILE, (LIMIT, LIMIT))
    base_fds = fd_count(w.pid)
    mark = w.log.mark()
    conns = []
    refusal = None
    try:
        for _ in range(LIMIT):
            status, conn = _try_upgrade(w.port)
            if status != 101:
                refusal = (status, conn)
                break
            conns.append(conn)
        print(f"fd limit {LIMIT}: {base_fds} fds at start, {len(conns)} sessions before the first refusal "
              f"({refusal[0] if refusal else None})")
        assert refusal is not None, f"{len(conns)} sessions opened under a {LIMIT}-fd limit, none refused"
        status, resp = refusal
        assert status == 503, f"out of descriptors: got {status} instead of HTTP 503"
        assert resp.body.strip(), "the 503 carries a reason"
        ev = w.log.wait("handshake.reject", since=mark, status=503, timeout=3)[0]
        assert "descriptor" in ev.get("reason", ""), ev
        # A second attempt is refused the same way (the reserve descriptor came back).
        status2, _ = _try_upgrade(w.port)
        assert status2 == 503, f"second attempt while out of descriptors: {status2}"
        # Existing sessions still work.
        for i, conn in enumerate(conns):
            _echo(conn, f"still here {i}".encode())
        # Free some: new sessions work again.
        for conn in conns[:5]:
            _close(conn)
        del conns[:5]
        settle(w, 5)
        status3, conn = _try_upgrade(w.port)
        assert status3 == 101, f"after closing 5 sessions a new one got {status3}"
        conns.append(conn)
        _echo(conn, b"fresh")
        assert w.alive()
    finally:
        for conn in conns:
            try:
                _close(conn)
            except (OSError, AssertionError, EOFError, TimeoutError):
                conn[0].close()


@pytest.mark.skipif(SANITIZED, reason="the sanitizers' own checks need descriptors (UBSan's vptr "
                    "check opens a pipe) and report false errors when none are left")
def test_out_of_file_descriptors_at_accept_503(weir, peers):
    """Descriptors used up by connections that have not sent a request yet: accept() itself
    fails with EMFILE, and Weir answers 503 with its reserve descriptor (the listener's
    `refused` line), then serves again once descriptors are free."""
    LIMIT = 64
    py = peers.py("echo", "--no-compression")
    w = weir.routes([{"upstreams": [py.addr]}])
    resource.prlimit(w.pid, resource.RLIMIT_NOFILE, (LIMIT, LIMIT))
    base_fds = fd_count(w.pid)
    held = []
    try:
        deadline = time.monotonic() + 10
        while fd_count(w.pid) < LIMIT and len(held) < 2 * LIMIT and time.monotonic() < deadline:
            held.append(socket.create_connection(("127.0.0.1", w.port), timeout=5))
            t_acc = time.monotonic() + 1
            while fd_count(w.pid) < min(LIMIT, base_fds + len(held)) and time.monotonic() < t_acc:
                time.sleep(0.005)
        assert fd_count(w.pid) >= LIMIT, f"weir holds {fd_count(w.pid)} fds with {len(held)} idle connections"
        mark = w.log.mark()
        for attempt in range(2):
            status, resp = _try_upgrade(w.port)
            assert status == 503, f"attempt {attempt} with no descriptor left: got {status} instead of HTTP 503"
        ev = w.log.wait("handshake.reject", since=mark, status=503, timeout=3)[0]
        assert "descriptor" in ev.get("reason", ""), ev
        assert "worker" in ev and "id" not in ev, f"not the listener's reserve-descriptor 503: {ev}"
        for s in held[:10]:
            s.close()
        del held[:10]
        wait_fds(w.pid, LIMIT - 8, 3)
        status, conn = _try_upgrade(w.port)
        assert status == 101, f"after freeing 10 descriptors a new session got {status}"
        _echo(conn, b"back in business")
        _close(conn)
        assert w.alive()
    finally:
        for s in held:
            s.close()
    fds = wait_fds(w.pid, base_fds, 3)
    assert fds <= base_fds, f"weir holds {fds} fds after all connections closed, {base_fds} before"
