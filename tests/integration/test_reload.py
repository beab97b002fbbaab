"""Config hot reload on SIGHUP: a new generation for new connections, live sessions keep
theirs, a bad file is refused with file:line:col, a removed route's sessions get 1012 after
reload.removed_route_grace, and nobody else is touched."""

from __future__ import annotations

import os
import signal
import threading
import time

from weirlib import OP_TEXT, RawClient, make_config, to_yaml


def write(w, cfg) -> None:
    w.config_path.write_text(to_yaml(cfg) + "\n")


def test_reload_alternating_valid_invalid_under_traffic(weir, peers):
    py = peers.py("echo", "--no-compression")
    base = {"name": "a", "match": {"path_prefix": "/a"}, "upstreams": [py.addr]}
    cfg = make_config([base], reload={"removed_route_grace": "200ms"})
    w = weir.start(cfg)
    stop = threading.Event()
    errors: list[str] = []
    counts = [0] * 20

    def chat(i):
        try:
            c = RawClient(w.port, "/a")
            while not stop.is_set():
                msg = f"{i}-{counts[i]}".encode()
                c.send(OP_TEXT, msg)
                assert c.recv_message(timeout=5) == (OP_TEXT, msg)
                counts[i] += 1
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append(f"{i}: {e!r}")

    ts = [threading.Thread(target=chat, args=(i,)) for i in range(len(counts))]
    for t in ts:
        t.start()
    try:
        for k in range(20):
            mark = w.log.mark()
            if k % 2 == 0:
                routes = [base, {"name": f"new{k}", "match": {"path_prefix": f"/new{k}"}, "upstreams": [py.addr]}]
                write(w, make_config(routes, reload={"removed_route_grace": "200ms"}))
                os.kill(w.pid, signal.SIGHUP)
                ev = w.log.wait("config_reload", since=mark, timeout=5)[0]
                assert f"new{k}" in ev["added"], ev
                c = RawClient(w.port, f"/new{k}")  # visible to new connections at once
                c.send(OP_TEXT, b"x")
                assert c.recv_message() == (OP_TEXT, b"x")
                c.close()
            else:
                w.config_path.write_text("listeners: [\nroutes: {bad\n")
                os.kill(w.pid, signal.SIGHUP)
                ev = w.log.wait("config_reload_failed", since=mark, timeout=5)[0]
                assert ev["error"].startswith(f"{w.config_path}:"), ev
                assert ev["line"] > 0, ev
    finally:
        stop.set()
        for t in ts:
            t.join(timeout=10)
    assert not errors, errors[:5]
    assert min(counts) > 0
    assert w.alive()


def test_removed_route_sessions_get_1012_after_grace(weir, peers):
    py = peers.py("echo", "--no-compression")
    keep = {"name": "keep", "match": {"path_prefix": "/keep"}, "upstreams": [py.addr]}
    gone = {"name": "gone", "match": {"path_prefix": "/gone"}, "upstreams": [py.addr]}
    w = weir.start(make_config([keep, gone], reload={"removed_route_grace": "500ms"}))
    k, g = RawClient(w.port, "/keep"), RawClient(w.port, "/gone")
    try:
        write(w, make_config([keep], reload={"removed_route_grace": "500ms"}))
        mark = w.log.mark()
        t0 = time.monotonic()
        os.kill(w.pid, signal.SIGHUP)
        ev = w.log.wait("config_reload", since=mark, timeout=5)[0]
        assert ev["removed"] == "gone", ev
        g.send(OP_TEXT, b"still here during the grace")
        assert g.recv_message() == (OP_TEXT, b"still here during the grace")
        f = g.expect_close(timeout=3)
        dt = time.monotonic() - t0
        assert (f.close_code, f.close_reason) == (1012, "route removed by a config reload"), f
        assert 0.4 <= dt < 2.0, dt
        k.send(OP_TEXT, b"untouched")
        assert k.recv_message() == (OP_TEXT, b"untouched")
    finally:
        k.close()
        g.close()
    assert w.alive()
