"""Helpers for Weir's integration tests: the weir process, peer processes, a raw
RFC 6455 frame codec over plain sockets, a raw (hand-written) WebSocket backend,
and a tiny YAML emitter for generated configs.

Everything binds 127.0.0.1 with port 0, and every wait is bounded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NODE_DIR = REPO / "tests" / "node"
PEERS_DIR = HERE / "peers"

# Debian's interpreter has python3-websockets 10.4; the python3 first on PATH may not.
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

KiB = 1024
MiB = 1024 * 1024


# Set by ctest for a sanitizer build: memory figures are meaningless there and
# some resource-exhaustion tests cannot run (the sanitizers need descriptors).
SANITIZED = os.environ.get("WEIR_SANITIZED") == "1"


def weir_bin() -> str:
    return os.environ.get("WEIR_BIN") or str(REPO / "build" / "weir")


# --------------------------------------------------------------------------- YAML


def _scalar(v: Any) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj: Any, indent: int = 0) -> str:
    """Block-style YAML for dicts/lists of scalars, dicts and lists."""
    pad = "  " * indent
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, dict):
                if not v:
                    out.append(f"{pad}{k}: {{}}")
                else:
                    out.append(f"{pad}{k}:")
                    out.append(to_yaml(v, indent + 1))
            elif isinstance(v, list):
                if all(not isinstance(x, (dict, list)) for x in v):
                    out.append(f"{pad}{k}: [{', '.join(_scalar(x) for x in v)}]")
                else:
                    out.append(f"{pad}{k}:")
                    out.append(to_yaml(v, indent + 1))
            else:
                out.append(f"{pad}{k}: {_scalar(v)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict):
                sub = to_yaml(item, indent + 1).split("\n")
                sub[0] = pad + "- " + sub[0][len(pad) + 2:]
                out.extend(sub)
            else:
                out.append(f"{pad}- {_scalar(item)}")
    else:
        out.append(pad + _scalar(obj))
    return "\n".join(out)


def deep_merge(base: dict, over: dict) -> dict:
    res = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(res.get(k), dict):
            res[k] = deep_merge(res[k], v)
        else:
            res[k] = v
    return res


def make_config(routes: list[dict], **top: Any) -> dict:
    """A full config: one 127.0.0.1:0 listener, 2 workers, short drain, plus overrides."""
    cfg: dict = {
        "workers": 2,
        "listeners": [{"address": "127.0.0.1", "port": 0}],
        "shutdown": {"drain": "2s"},
        "log": {"level": "info"},
        # Its own admin port: tests run side by side (the default is 9901). No
        # readiness probes: a raw backend would take a probe's TCP connect
        # for the session's (tests of readiness turn them on).
        "admin": {"address": "127.0.0.1", "port": 0, "upstream_probe_interval": "0"},
    }
    cfg = deep_merge(cfg, top)
    cfg["routes"] = routes
    return cfg


# --------------------------------------------------------------------------- event logs


class EventLog:
    """Thread-safe list of JSON events fed from a process's stdout."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self.raw: list[str] = []
        self.cond = threading.Condition()
        self.eof = False

    def wait_eof(self, timeout: float) -> bool:
        """Until the process's output has been read to its end (bounded)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def feed_from(self, stream) -> threading.Thread:
        def run() -> None:
            for line in iter(stream.readline, b""):
                text = line.decode("utf-8", "replace").rstrip("\n")
                try:
                    obj = json.loads(text)
                    if not isinstance(obj, dict):
                        obj = {"_raw": text}
                except ValueError:
                    obj = {"_raw": text}
                with self.cond:
                    self.raw.append(text)
                    self.items.append(obj)
                    self.cond.notify_all()
            with self.cond:
                self.eof = True
                self.cond.notify_all()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def mark(self) -> int:
        with self.cond:
            return len(self.items)

    @staticmethod
    def _matches(ev: dict, event: Optional[str], fields: dict) -> bool:
        if event is not None and ev.get("event") != event:
            return False
        return all(ev.get(k) == v for k, v in fields.items())

    def find(self, event: Optional[str] = None, since: int = 0, **fields: Any) -> list[dict]:
        with self.cond:
            return [e for e in self.items[since:] if self._matches(e, event, fields)]

    def wait(self, event: Optional[str] = None, timeout: float = 5.0, since: int = 0,
             count: int = 1, pred: Optional[Callable[[dict], bool]] = None, **fields: Any) -> list[dict]:
        """Wait until `count` matching events exist (after index `since`); return them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [e for e in self.items[since:]
                         if self._matches(e, event, fields) and (pred is None or pred(e))]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.eof and len(found) < count):
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {count}x event={event!r} {fields}; "
                        f"got {len(found)}; last lines:\n" + "\n".join(self.raw[-15:]))
                self.cond.wait(min(left, 0.2))


# --------------------------------------------------------------------------- weir process


class _StderrCapture:
    """Collects a child process's stderr (self.proc) into self.stderr_chunks."""

    def _drain_stderr(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):
            self.stderr_chunks.append(chunk)

    @property
    def stderr(self) -> str:
        return b"".join(self.stderr_chunks).decode("utf-8", "replace")


class Weir(_StderrCapture):
    """A running `weir run -c FILE`, with its JSON log collected."""

    def __init__(self, config: dict | str, workdir: Path, name: str = "weir",
                 start_timeout: float = 10.0, wrapper: Optional[list[str]] = None,
                 args: tuple[str, ...] = (), env: Optional[dict[str, str]] = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"{name}.yaml"
        text = config if isinstance(config, str) else to_yaml(config) + "\n"
        self.config_path.write_text(text)
        self.log = EventLog()
        self.stderr_chunks: list[bytes] = []
        # wrapper: a command that execs its arguments (so pid stays weir's), e.g. unshare.
        self.proc = subprocess.Popen(list(wrapper or []) + [weir_bin(), "run", "-c", str(self.config_path), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL,
                                     env={**os.environ, **env} if env else None)
        self.pid = self.proc.pid
        self.log.feed_from(self.proc.stdout)
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.returncode: Optional[int] = None
        n_listeners = len(config["listeners"]) if isinstance(config, dict) else 1
        try:
            evs = self.log.wait("listening", timeout=start_timeout, count=n_listeners)
            self.log.wait("started", timeout=start_timeout)
        except AssertionError as e:
            self.kill()
            raise AssertionError(f"weir did not start: {e}\nstderr: {self.stderr}") from None
        self.ports = [int(e["port"]) for e in evs[:n_listeners]]
        self.port = self.ports[0]
        admin = self.log.find("admin_listening")
        self.admin_port: Optional[int] = int(admin[0]["port"]) if admin else None

    def admin(self, path: str, method: str = "GET", body: Optional[bytes] = None,
              token: Optional[str] = None, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        """One request to the admin listener: (status, headers lower-cased, body)."""
        import http.client
        assert self.admin_port, "this weir has no admin listener"
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def admin_json(self, path: str, **kw: Any) -> Any:
        status, _, body = self.admin(path, **kw)
        assert status == 200, f"{path}: HTTP {status}: {body!r}"
        return json.loads(body)

    def metrics(self, **kw: Any) -> dict[str, float]:
        """/metrics parsed: {'name{labels}': value} with labels as written."""
        status, _, body = self.admin("/metrics", **kw)
        assert status == 200, f"/metrics: HTTP {status}"
        out: dict[str, float] = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait for exit (bounded), return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"weir did not exit within {timeout}s of SIGTERM")
        # Its last lines (e.g. "stopped") may still be in the pipe: read to the end first.
        self.log.wait_eof(timeout=5)
        return self.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


# --------------------------------------------------------------------------- peer processes


class Peer(_StderrCapture):
    """A peer process (Python websockets or Node ws) that prints JSON lines; the first
    one is {"event": "listening", "port": N} for servers."""

    def __init__(self, argv: list[str], server: bool = True, cwd: Optional[Path] = None,
                 start_timeout: float = 15.0) -> None:
        self.argv = argv
        self.log = EventLog()
        self.stderr_chunks: list[bytes] = []
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, cwd=str(cwd) if cwd else None)
        self.log.feed_from(self.proc.stdout)
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.port = 0
        if server:
            try:
                ev = self.log.wait("listening", timeout=start_timeout)[0]
            except AssertionError as e:
                self.stop()
                raise AssertionError(f"peer {argv} did not start: {e}\nstderr: {self.stderr}") from None
            self.port = int(ev["port"])

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill(self) -> None:
        """SIGKILL: the process dies without closing anything gracefully."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


def py_backend(mode: str = "echo", *args: str) -> Peer:
    return Peer([PYTHON, str(PEERS_DIR / "pyback.py"), mode, *args])


def node_available() -> bool:
    return shutil.which("node") is not None and (NODE_DIR / "node_modules" / "ws").is_dir()


def node_echo_backend() -> Peer:
    return Peer(["node", str(NODE_DIR / "echo_server.js")], cwd=NODE_DIR)


# --------------------------------------------------------------------------- frames


def apply_mask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def encode_frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0,
                 mask: bool = True, mask_key: Optional[bytes] = None) -> bytes:
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        return hdr + key + apply_mask(payload, key)
    return hdr + payload


def close_payload(code: int, reason: bytes | str = b"") -> bytes:
    if isinstance(reason, str):
        reason = reason.encode()
    return struct.pack("!H", code) + reason


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    mask_key: Optional[bytes]
    payload: bytes

    @property
    def close_code(self) -> Optional[int]:
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8", "replace")


class FrameReader:
    """Reads RFC 6455 frames from a socket (with bytes already read in `initial`)."""

    def __init__(self, sock: socket.socket, initial: bytes = b"") -> None:
        self.sock = sock
        self.buf = bytearray(initial)

    def _fill(self, n: int, deadline: float) -> None:
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no frame within the timeout ({len(self.buf)}/{n} bytes)")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(max(1 << 20, n - len(self.buf)))
            except socket.timeout:
                raise TimeoutError(f"no frame within the timeout ({len(self.buf)}/{n} bytes)") from None
            if not chunk:
                raise EOFError("connection closed by peer")
            self.buf += chunk

    def read_frame(self, timeout: float = 5.0) -> Frame:
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._fill(4, deadline)
            n = struct.unpack_from("!H", self.buf, 2)[0]
            pos = 4
        elif n == 127:
            self._fill(10, deadline)
            n = struct.unpack_from("!Q", self.buf, 2)[0]
            pos = 10
        key = None
        if b1 & 0x80:
            self._fill(pos + 4, deadline)
            key = bytes(self.buf[pos:pos + 4])
            pos += 4
        self._fill(pos + n, deadline)
        payload = bytes(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        if key is not None:
            payload = apply_mask(payload, key)
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, key, payload)


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


# --------------------------------------------------------------------------- HTTP over raw sockets


def build_request(path: str = "/", *, method: str = "GET", host: Optional[str] = "127.0.0.1",
                  key: Optional[str] = "auto", version: Optional[str] = "13",
                  upgrade: Optional[str] = "websocket", connection: Optional[str] = "Upgrade",
                  headers: list[tuple[str, str]] | tuple = (), http: str = "HTTP/1.1") -> bytes:
    lines = [f"{method} {path} {http}"]
    if host is not None:
        lines.append(f"Host: {host}")
    if upgrade is not None:
        lines.append(f"Upgrade: {upgrade}")
    if connection is not None:
        lines.append(f"Connection: {connection}")
    if key == "auto":
        key = new_key()
    if key is not None:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    for k, v in headers:
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, list[str]]
    body: bytes
    rest: bytes = b""
    sock: Optional[socket.socket] = None

    def header(self, name: str) -> Optional[str]:
        v = self.headers.get(name.lower())
        return v[0] if v else None


def recv_before(sock: socket.socket, deadline: float, timeout_message: str) -> bytes:
    """One recv that must complete before `deadline` (time.monotonic()); raises
    TimeoutError(timeout_message) otherwise. b"" means EOF."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError(timeout_message)
    sock.settimeout(left)
    try:
        return sock.recv(65536)
    except socket.timeout:
        raise TimeoutError(timeout_message) from None


def read_response(sock: socket.socket, timeout: float = 5.0) -> Response:
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = recv_before(sock, deadline, f"no HTTP response head within {timeout}s (got {buf!r})")
        if not chunk:
            raise EOFError(f"connection closed before a full response head (got {buf!r})")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
    assert m, f"bad status line {lines[0]!r}"
    status = int(m.group(1))
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    if status == 101:
        return Response(status, m.group(2), headers, b"", rest, sock)
    body = rest
    clen = headers.get("content-length")
    want = int(clen[0]) if clen else None
    while want is None or len(body) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionError):
            break
        if not chunk:
            break
        body += chunk
    return Response(status, m.group(2), headers, body, b"", sock)


def http_exchange(port: int, request: bytes, timeout: float = 5.0) -> Response:
    """Send raw request bytes, return the parsed response (socket closed afterwards)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        r = read_response(s, timeout)
        r.sock = None
        return r


def wait_peer_close(sock: socket.socket, timeout: float) -> float:
    """Read and discard until the peer closes (EOF or reset); return seconds waited.
    Raises TimeoutError if the connection is still open at the deadline."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        try:
            chunk = recv_before(sock, deadline, f"connection still open after {timeout}s")
        except ConnectionError:
            return time.monotonic() - t0
        if not chunk:
            return time.monotonic() - t0


class RawClient:
    """A WebSocket client written by hand over a socket: sends exactly the bytes asked."""

    def __init__(self, port: int, path: str = "/", headers: list[tuple[str, str]] | tuple = (),
                 host: str = "127.0.0.1", timeout: float = 5.0, connection: str = "Upgrade",
                 tls: Optional["ssl.SSLContext"] = None) -> None:
        # tls: speak wss:// (tlsraw.TlsSocket: each sendall is its own TLS record).
        if tls is not None:
            from tlsraw import TlsSocket
            self.sock = TlsSocket(port, tls, timeout=timeout)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.key = new_key()
        self.sock.sendall(build_request(path, host=host, key=self.key, headers=headers,
                                        connection=connection))
        r = read_response(self.sock, timeout)
        if r.status != 101:
            self.sock.close()
            raise AssertionError(f"upgrade refused: {r.status} {r.body!r}")
        assert r.header("sec-websocket-accept") == accept_key(self.key)
        self.response = r
        self.reader = FrameReader(self.sock, r.rest)
        self.controls: list[Frame] = []

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, opcode: int, payload: bytes = b"", **kw: Any) -> None:
        self.sock.sendall(encode_frame(opcode, payload, **kw))

    def recv_frame(self, timeout: float = 5.0) -> Frame:
        return self.reader.read_frame(timeout)

    def recv_message(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """Next data message, reassembled; control frames go to self.controls
        (a Close raises AssertionError)."""
        deadline = time.monotonic() + timeout
        opcode, parts = None, []
        while True:
            f = self.reader.read_frame(max(0.0, deadline - time.monotonic()))
            if f.opcode >= 8:
                if f.opcode == OP_CLOSE:
                    raise AssertionError(f"got Close {f.close_code} {f.close_reason!r} instead of a message")
                self.controls.append(f)
                continue
            if opcode is None:
                opcode = f.opcode
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts)

    def expect_close(self, timeout: float = 5.0) -> Frame:
        """Read frames until a Close frame arrives; fail on EOF first or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self.reader.read_frame(max(0.0, deadline - time.monotonic()))
            except EOFError:
                raise AssertionError("connection closed without a Close frame") from None
            except ConnectionResetError:
                raise AssertionError("connection reset without a Close frame") from None
            if f.opcode == OP_CLOSE:
                return f
            self.controls.append(f)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------- raw backend


class RawBackendConn:
    def __init__(self, sock: socket.socket, owner: "RawBackend") -> None:
        self.sock = sock
        self.owner = owner
        self.request_head = ""
        self.headers: dict[str, str] = {}
        self.frames: list[Frame] = []
        self.closed = False
        self.reader: Optional[FrameReader] = None

    def send(self, opcode: int, payload: bytes = b"", **kw: Any) -> None:
        kw.setdefault("mask", False)
        self.sock.sendall(encode_frame(opcode, payload, **kw))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)


class RawBackend:
    """A hand-written WebSocket backend (threads), recording every frame it receives.

    mode "echo": answers the upgrade, echoes data frames one for one (same FIN and opcode,
    so fragmentation is visible end to end), answers pings with pongs and Close with Close.
    mode "silent": accepts the TCP connection and never sends a byte.
    on_open(conn) runs right after the 101 is sent (e.g. to send malformed frames).
    """

    def __init__(self, mode: str = "echo", on_open: Optional[Callable[[RawBackendConn], None]] = None,
                 tls: Optional["ssl.SSLContext"] = None) -> None:
        self.mode = mode
        self.on_open = on_open
        self.tls = tls  # a server SSLContext: wss:// (conn.sock is then an SSLSocket)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.conns: list[RawBackendConn] = []
        self.cond = threading.Condition()
        self.stopped = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept_loop(self) -> None:
        while not self.stopped:
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c = RawBackendConn(s, self)
            with self.cond:
                self.conns.append(c)
                self.cond.notify_all()
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _notify(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def _serve(self, c: RawBackendConn) -> None:
        try:
            if self.mode == "silent":
                while not self.stopped:
                    time.sleep(0.1)
                return
            buf = b""
            c.sock.settimeout(10)
            if self.tls is not None:
                c.sock = self.tls.wrap_socket(c.sock, server_side=True)
            while b"\r\n\r\n" not in buf:
                chunk = c.sock.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, rest = buf.split(b"\r\n\r\n", 1)
            c.request_head = head.decode("latin-1")
            for line in c.request_head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                c.headers[k.strip().lower()] = v.strip()
            key = c.headers.get("sec-websocket-key", "")
            c.sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n").encode())
            c.reader = FrameReader(c.sock, rest)
            self._notify()
            if self.on_open:
                self.on_open(c)
            while not self.stopped:
                try:
                    f = c.reader.read_frame(timeout=0.5)
                except TimeoutError:
                    continue
                with self.cond:
                    c.frames.append(f)
                    self.cond.notify_all()
                if self.mode != "echo":
                    continue
                if f.opcode == OP_PING:
                    c.send(OP_PONG, f.payload)
                elif f.opcode == OP_CLOSE:
                    c.send(OP_CLOSE, f.payload[:125])
                    if self.tls is not None:
                        # SSLSocket.shutdown() drops TLS and would read the peer's
                        # close_notify as plaintext: end TLS properly, then the TCP.
                        try:
                            c.sock = c.sock.unwrap()
                        except (OSError, ValueError):
                            pass
                        c.sock.shutdown(socket.SHUT_WR)
                        break
                    c.sock.shutdown(socket.SHUT_WR)
                elif f.opcode in (OP_CONT, OP_TEXT, OP_BINARY):
                    c.send(f.opcode, f.payload, fin=f.fin)
        except (EOFError, OSError):
            pass
        finally:
            c.closed = True
            self._notify()

    def wait_conn(self, n: int = 1, timeout: float = 5.0) -> RawBackendConn:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.conns) < n or (self.mode != "silent" and self.conns[n - 1].reader is None
                                          and not self.conns[n - 1].closed):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"raw backend: no connection #{n} within {timeout}s")
                self.cond.wait(min(left, 0.2))
            return self.conns[n - 1]

    def wait_frames(self, conn: RawBackendConn, n: int, timeout: float = 5.0) -> list[Frame]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(conn.frames) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"raw backend: {len(conn.frames)} frames, wanted {n}, "
                                         f"within {timeout}s: {conn.frames!r}"[:2000])
                self.cond.wait(min(left, 0.2))
            return list(conn.frames)

    def wait_frame(self, conn: RawBackendConn, pred: Callable[[Frame], bool], timeout: float = 5.0) -> Frame:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for f in conn.frames:
                    if pred(f):
                        return f
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"raw backend: no matching frame within {timeout}s; "
                                         f"frames: {conn.frames!r}"[:2000])
                self.cond.wait(min(left, 0.2))

    def close(self) -> None:
        self.stopped = True
        try:
            self.lsock.close()
        except OSError:
            pass
        for c in self.conns:
            try:
                c.sock.close()
            except OSError:
                pass


# --------------------------------------------------------------------------- misc


def recv_until_close(c: "RawClient", timeout: float = 5.0) -> tuple[list[Frame], Frame]:
    """Frames a RawClient receives up to its Close: (data frames, the Close)."""
    frames = []
    while True:
        f = c.recv_frame(timeout=timeout)
        if f.opcode == OP_CLOSE:
            return frames, f
        frames.append(f)


def assert_fragments(frames: list, opcode: int, payload: bytes) -> None:
    """frames are an unfinished message: `opcode` first, continuations after, none
    final, and their payloads joined are `payload` (a re-fragmented frame arrives this
    way: RFC 6455 5.4)."""
    kinds = [(f.opcode, f.fin) for f in frames]
    assert frames and kinds[0] == (opcode, False), kinds[:3]
    assert all(k == (OP_CONT, False) for k in kinds[1:]), kinds
    got = b"".join(f.payload for f in frames)
    assert got == payload, f"{len(got)} bytes arrived, {len(payload)} were sent"


def free_port() -> int:
    """A port nobody listens on (bound then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def flood_payload(i: int, size: int) -> bytes:
    """Message i of the flood backend: 4-byte index then a byte ramp shifted by i."""
    ramp = _RAMP
    off = i % 256
    body = ramp[off:off + size - 4] if size > 4 else b""
    return struct.pack("!I", i) + body if size >= 4 else struct.pack("!I", i)[:size]


_RAMP = bytes(range(256)) * (4 * 4096 + 2)  # > 4 MiB of ramp, enough for 1 MiB + shift


def random_text(rng, size: int) -> str:
    """ASCII text of exactly `size` bytes."""
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_"
    raw = rng.randbytes(size)
    return raw.translate(bytes(alphabet[b % len(alphabet)] for b in range(256))).decode("ascii")


# --------------------------------------------------------------------------- redis


class RedisServer:
    """A real `redis-server` on 127.0.0.1:port, no persistence; kill() and start() again
    on the same port (the shared-limits tests lose and regain it)."""

    def __init__(self, port: Optional[int] = None, password: Optional[str] = None) -> None:
        self.port = port or free_port()
        self.password = password
        self.proc: Optional[subprocess.Popen] = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        auth = ["--requirepass", self.password] if self.password else []
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", *auth],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
