"""Conformance cases as raw bytes, and the runner that plays one against a server and
returns what a client observes (the verdict).

A case is a list of TCP writes (chunks) the client makes after the upgrade, optionally with
a pause between writes, then (unless the case sends its own Close) a Close 1000. The verdict
is what came back: the data messages (reassembled), the pong payloads, the Close code (or
"empty" for a Close without a code, "dropped" for EOF/reset without a Close, "timeout"),
and whether the server closed the TCP connection within 2 s of the close handshake.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from weirlib import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawClient,
                     close_payload, encode_frame, wait_peer_close)

CloseOutcome = Union[int, str]  # a code, "empty", "dropped" or "timeout"

TCP_CLOSE_WITHIN = 2.0
ECHO_WAIT = 3.0  # at most this long for the expected echoes before our Close


def digest(op: int, payload: bytes) -> tuple:
    """A message as compared: small payloads verbatim (readable diffs), large ones hashed."""
    if len(payload) <= 48:
        return (op, len(payload), payload)
    return (op, len(payload), hashlib.sha1(payload).hexdigest()[:16])


@dataclass(frozen=True)
class Verdict:
    messages: tuple = ()
    pongs: tuple = ()
    close: CloseOutcome = "timeout"
    tcp_closed: Optional[bool] = None  # None when there was no Close frame

    def brief(self) -> str:
        msgs = ", ".join(f"{'T' if m[0] == OP_TEXT else 'B' if m[0] == OP_BINARY else m[0]}"
                         f"[{m[1]}]" for m in self.messages[:8])
        if len(self.messages) > 8:
            msgs += f", ... ({len(self.messages)} messages)"
        return f"msgs=[{msgs}] pongs={len(self.pongs)} close={self.close} tcp_closed={self.tcp_closed}"


def expect(msgs=(), pongs=(), close: CloseOutcome = 1000) -> Verdict:
    """Build an expected verdict from (opcode, payload) messages."""
    tcp = True if isinstance(close, int) or close == "empty" else None
    if close == "dropped":
        tcp = None
    return Verdict(tuple(digest(op, p) for op, p in msgs), tuple(pongs), close, tcp)


@dataclass
class Case:
    group: str
    name: str
    chunks: Callable[[], list[bytes]]  # the TCP writes (built lazily: big payloads)
    expected: Callable[[], Verdict]
    gap: float = 0.0                   # pause between writes
    send_close: bool = True            # append a Close 1000 after the chunks
    timeout: float = 5.0               # for the whole exchange
    utf8_invalid: bool = False         # the backend's 1007 is for invalid UTF-8 in a text message

    @property
    def id(self) -> str:
        return f"{self.group}-{self.name}"


def f(op: int, payload: bytes = b"", **kw) -> bytes:
    """A client frame (masked unless mask=False)."""
    return encode_frame(op, payload, **kw)


def run_case(port: int, path: str, case: Case, tls=None) -> tuple[Verdict, int]:
    """Play the case against 127.0.0.1:port; return (verdict, client's local port).
    tls: an ssl.SSLContext to speak wss:// (every chunk becomes its own TLS record)."""
    c = RawClient(port, path, timeout=5.0, tls=tls)
    try:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        local_port = c.sock.getsockname()[1]
        chunks = case.chunks()
        own_close = any(_has_close(ch) for ch in chunks) if not case.send_close else False
        # Writes happen in their own thread (own socket object, own timeout) so that a
        # server echoing a big message while we are still writing cannot deadlock us.
        wsock = c.sock.dup()
        wsock.settimeout(case.timeout + 5)
        state = {"close_sent": False, "error": None}
        wlock = threading.Lock()
        exp = case.expected()
        want = len(exp.messages) + len(exp.pongs)
        progress = threading.Condition()
        progress.n = 0
        progress.closed = False

        def bump(closed: bool = False) -> None:
            with progress:
                if closed:
                    progress.closed = True
                else:
                    progress.n += 1
                progress.notify_all()

        def writer():
            try:
                for i, ch in enumerate(chunks):
                    if i and case.gap:
                        time.sleep(case.gap)
                    with wlock:
                        wsock.sendall(ch)
                if case.send_close:
                    # The echo of the last message must not race our Close (a server that
                    # has received a Close sends no more data): wait for what is expected
                    # back first (bounded; a short answer shows in the verdict anyway).
                    with progress:
                        progress.wait_for(lambda: progress.n >= want or progress.closed,
                                          timeout=ECHO_WAIT)
                    with wlock:
                        wsock.sendall(f(OP_CLOSE, close_payload(1000)))
                state["close_sent"] = case.send_close or own_close
            except OSError as e:
                state["error"] = e

        t = threading.Thread(target=writer, daemon=True)
        t.start()

        deadline = time.monotonic() + case.timeout
        msgs: list[tuple] = []
        pongs: list[bytes] = []
        cur_op, parts = None, []
        close: CloseOutcome = "timeout"
        tcp_closed: Optional[bool] = None
        try:
            while True:
                fr = c.reader.read_frame(max(0.0, deadline - time.monotonic()))
                if fr.opcode == OP_CLOSE:
                    close = fr.close_code if len(fr.payload) >= 2 else "empty"
                    break
                if fr.opcode == OP_PONG:
                    pongs.append(fr.payload)
                    bump()
                elif fr.opcode == OP_PING:
                    with wlock:
                        wsock.sendall(f(OP_PONG, fr.payload))
                else:
                    if cur_op is None:
                        cur_op = fr.opcode
                    parts.append(fr.payload)
                    if fr.fin:
                        msgs.append(digest(cur_op, b"".join(parts)))
                        cur_op, parts = None, []
                        bump()
        except TimeoutError:
            close = "timeout"
        except (EOFError, ConnectionError):
            close = "dropped"
        bump(closed=True)

        if close not in ("timeout", "dropped"):
            # Complete the close handshake if we have not started it, then the server
            # must close the TCP connection.
            t.join(timeout=max(0.5, deadline - time.monotonic()))
            if not state["close_sent"] and state["error"] is None:
                code = close if isinstance(close, int) and _sendable(close) else 1000
                try:
                    with wlock:
                        wsock.sendall(f(OP_CLOSE, close_payload(code)))
                except OSError:
                    pass
            try:
                wait_peer_close(c.sock, TCP_CLOSE_WITHIN)
                tcp_closed = True
            except TimeoutError:
                tcp_closed = False
        t.join(timeout=2)
        wsock.close()
        return Verdict(tuple(msgs), tuple(pongs), close, tcp_closed), local_port
    finally:
        c.close()


def _sendable(code: int) -> bool:
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) \
        or 3000 <= code <= 4999


def _has_close(chunk: bytes) -> bool:
    """Whether a chunk holds a client Close frame (the cases that send their own Close
    put it in a chunk that starts with it or holds only whole frames)."""
    pos = 0
    while pos + 2 <= len(chunk):
        b0, b1 = chunk[pos], chunk[pos + 1]
        n = b1 & 0x7F
        p = pos + 2
        if n == 126:
            if p + 2 > len(chunk):
                return False
            n = int.from_bytes(chunk[p:p + 2], "big")
            p += 2
        elif n == 127:
            if p + 8 > len(chunk):
                return False
            n = int.from_bytes(chunk[p:p + 8], "big")
            p += 8
        if b1 & 0x80:
            p += 4
        if b0 & 0x0F == OP_CLOSE:
            return True
        pos = p + n
    return False
