"""A TLS client socket that behaves like a plain one for the raw-byte tests: every
sendall() is its own TLS record(s) (so a case written one byte per write reaches Weir one
byte per TLS record), and one thread may read while another writes.

Python's SSLSocket must not be read in one thread and written in another (OpenSSL forbids
concurrent use of one SSL object), and it cannot be dup()ed. TlsSocket runs OpenSSL on
memory BIOs under a lock and does the socket I/O itself on a plain socket, which may be read
and written from two threads; dup() gives the writer its own view (own timeout) of the same
TLS session.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from typing import Optional


class _Shared:
    def __init__(self, raw: socket.socket, obj: ssl.SSLObject, incoming: ssl.MemoryBIO,
                 outgoing: ssl.MemoryBIO) -> None:
        self.raw = raw
        self.obj = obj
        self.incoming = incoming
        self.outgoing = outgoing
        self.ssl_lock = threading.Lock()   # the SSLObject and its BIOs
        self.send_lock = threading.Lock()  # ciphertext goes out in the order it was made
        self.plain = bytearray()           # decrypted, not yet returned by recv()
        self.eof = False
        self.open_views = 1


class TlsSocket:
    """Client side of a TLS connection to 127.0.0.1:port; handshake done in __init__."""

    def __init__(self, port: int, ctx: ssl.SSLContext, server_hostname: str = "localhost",
                 timeout: float = 5.0, _shared: Optional[_Shared] = None) -> None:
        self._timeout: Optional[float] = timeout
        if _shared is not None:
            self._s = _shared
            return
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_side=False, server_hostname=server_hostname)
        self._s = _Shared(raw, obj, incoming, outgoing)
        deadline = time.monotonic() + timeout
        while True:
            try:
                obj.do_handshake()
                self._flush()
                break
            except ssl.SSLWantReadError:
                self._flush()
                raw.settimeout(max(0.01, deadline - time.monotonic()))
                data = raw.recv(65536)
                if not data:
                    raise ConnectionResetError("closed during the TLS handshake")
                incoming.write(data)

    # ------------------------------------------------------------------ socket-like API

    def settimeout(self, t: Optional[float]) -> None:
        self._timeout = t

    def setsockopt(self, *args) -> None:
        self._s.raw.setsockopt(*args)

    def getsockname(self):
        return self._s.raw.getsockname()

    def fileno(self) -> int:
        return self._s.raw.fileno()

    def dup(self) -> "TlsSocket":
        self._s.open_views += 1
        return TlsSocket(0, None, _shared=self._s, timeout=self._timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        s = self._s
        s.open_views -= 1
        if s.open_views <= 0:
            try:
                s.raw.close()
            except OSError:
                pass

    def sendall(self, data: bytes) -> None:
        s = self._s
        with s.send_lock:
            with s.ssl_lock:
                if data:
                    s.obj.write(data)
                out = s.outgoing.read()
            s.raw.settimeout(self._timeout)
            s.raw.sendall(out)

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)

    def recv(self, n: int) -> bytes:
        s = self._s
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            with s.ssl_lock:
                self._decrypt()
                if s.plain or s.eof:
                    out = bytes(s.plain[:n])
                    del s.plain[:n]
                    return out
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise socket.timeout("timed out")
            s.raw.settimeout(left)
            data = s.raw.recv(65536)  # raises socket.timeout / ConnectionError as a socket does
            with s.ssl_lock:
                if data:
                    s.incoming.write(data)
                else:
                    s.incoming.write_eof()
            self._flush_if_any()

    # ------------------------------------------------------------------ internals

    def _decrypt(self) -> None:
        """Moves what OpenSSL can decrypt into plain (ssl_lock held)."""
        s = self._s
        while not s.eof:
            try:
                chunk = s.obj.read(65536)
            except ssl.SSLWantReadError:
                return
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                s.eof = True  # close_notify, or EOF without one: the stream has ended
                return
            except ssl.SSLError as e:
                raise ConnectionResetError(f"TLS error: {e}") from None
            if not chunk:
                s.eof = True
                return
            s.plain += chunk

    def _flush(self) -> None:
        out = self._s.outgoing.read()
        if out:
            self._s.raw.sendall(out)

    def _flush_if_any(self) -> None:
        s = self._s
        with s.ssl_lock:
            pending = s.outgoing.pending
        if pending:
            with s.send_lock:
                with s.ssl_lock:
                    out = s.outgoing.read()
                s.raw.sendall(out)
