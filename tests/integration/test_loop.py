"""The worker loop (src/core/ready_poller.*): Asio runs nested in it, so the paths that reach
Asio other than through its own descriptor get their own checks: the built-in echo upstream
(Asio sockets started from the loop), upstreams given by name (DNS answers posted from
Asio's resolver thread) with their connect deadline on the timer wheel, and the fallback when
Asio's epoll descriptor cannot be found (no /proc)."""

import os
import shutil
import subprocess
import time

import pytest

from weirlib import OP_TEXT, SANITIZED, RawClient, make_config

HIDE_PROC = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none /proc && exec "$0" "$@"']


def echo_round_trips(port: int, path: str, n: int) -> None:
    for i in range(n):
        c = RawClient(port, path)
        try:
            assert c.response.status == 101, c.response.status
            msg = f"loop {i}".encode()
            c.send(OP_TEXT, msg)
            op, data = c.recv_message(timeout=5)
            assert (op, data) == (OP_TEXT, msg)
        finally:
            c.close()


def routes(backend_port: int) -> list[dict]:
    return [
        {"name": "builtin", "match": {"path": "/builtin"}, "upstreams": "echo"},
        # By name: resolved on Asio's resolver thread; the answer must wake the loop.
        {"name": "byname", "match": {"path": "/byname"}, "upstreams": [f"localhost:{backend_port}"],
         "timeouts": {"connect": "3s"}},
    ]


def test_builtin_echo_and_named_upstream(weir, peers):
    back = peers.py("echo")
    w = weir.start(make_config(routes(back.port), workers=1))
    t0 = time.monotonic()
    echo_round_trips(w.port, "/builtin", 20)
    echo_round_trips(w.port, "/byname", 5)
    # A DNS wait polls Asio every few ms; it must not be taken for the connect deadline.
    assert time.monotonic() - t0 < 3.0
    assert not w.log.find("handshake.reject"), w.log.find("handshake.reject")
    assert not w.log.find("worker_loop_fallback")


def hide_proc_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    return subprocess.run(HIDE_PROC + ["true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not hide_proc_works(), reason="needs root and unshare -m to hide /proc")
@pytest.mark.skipif(SANITIZED, reason="LeakSanitizer needs /proc (it fails the exit without it)")
def test_runs_without_proc(weir, peers):
    """Without /proc, Asio's descriptor cannot be found: the loop polls Asio on a timer
    instead, and everything still works, built-in echo and DNS included."""
    back = peers.py("echo")
    w = weir.start(make_config(routes(back.port), workers=1), wrapper=HIDE_PROC)
    assert w.log.find("worker_loop_fallback"), "the fallback was not taken: is /proc still visible?"
    echo_round_trips(w.port, "/builtin", 10)
    echo_round_trips(w.port, "/byname", 3)
    assert not w.log.find("handshake.reject"), w.log.find("handshake.reject")


def test_heap_given_back_after_a_burst(weir, peers):
    """A burst of handshakes, then a pause: the server trims the heap once (core::TrimPolicy,
    256 new connections at least, 1 s without new ones), and the held connections still
    relay afterwards."""
    back = peers.py("echo")
    w = weir.start(make_config(routes(back.port), workers=1, log={"level": "debug"}))
    held = []
    try:
        for _ in range(300):
            held.append(RawClient(w.port, "/builtin"))
        ev = w.log.wait("heap_trimmed", timeout=5)[0]
        assert ev["us"] >= 0
        for i, c in enumerate(held[::50]):
            c.send(OP_TEXT, b"after trim %d" % i)
            assert c.recv_message(timeout=5) == (OP_TEXT, b"after trim %d" % i)
        mark = w.log.mark()
        time.sleep(2.5)  # no new connections: no second trim
        assert not w.log.find("heap_trimmed", since=mark)
    finally:
        for c in held:
            c.close()
