"""Config hot reload on SIGHUP: a new generation for new connections, live sessions keep
theirs, a bad file is refused with file:line:col, a removed route's sessions get 1012 after
reload.removed_route_grace, and nobody else is touched."""

from __future__ import annotations

import os
import signal
import threading
import time

import subprocess

from weirlib import OP_TEXT, RawClient, free_port, make_config, to_yaml, weir_bin


def write(w, cfg) -> None:
    w.config_path.write_text(to_yaml(cfg) + "\n")


def test_reload_alternating_valid_invalid_under_traffic(weir, peers):
    py = peers.py("echo", "--no-compression")
    base = {"name": "a", "match": {"path_prefix": "/a"}, "upstreams": [py.addr]}
    cfg = make_config([base], reload={"removed_route_grace": "200ms"})
    w = weir.start(cfg)
    stop = threading.Event()
    errors: list[str] = []
    counts = [0] * 100  # connections echoing throughout

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
                ev = w.log.wait("config.reload", since=mark, timeout=5)[0]
                assert f"new{k}" in ev["added"], ev
                c = RawClient(w.port, f"/new{k}")  # visible to new connections at once
                c.send(OP_TEXT, b"x")
                assert c.recv_message() == (OP_TEXT, b"x")
                c.close()
            else:
                w.config_path.write_text("listeners: [\nroutes: {bad\n")
                os.kill(w.pid, signal.SIGHUP)
                ev = w.log.wait("config.reload_failed", since=mark, timeout=5)[0]
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
        ev = w.log.wait("config.reload", since=mark, timeout=5)[0]
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


def test_listeners_added_and_removed_without_touching_the_others(weir, peers):
    py = peers.py("echo", "--no-compression")
    a = {"name": "a", "match": {"path_prefix": "/"}, "upstreams": [py.addr]}
    first = {"address": "127.0.0.1", "port": 0}
    w = weir.start(make_config([a], listeners=[first]))
    old = RawClient(w.port, "/")  # a session on the listener that stays
    extra = free_port()
    try:
        mark = w.log.mark()
        write(w, make_config([a], listeners=[first, {"address": "127.0.0.1", "port": extra}]))
        os.kill(w.pid, signal.SIGHUP)
        ev = w.log.wait("config.reload", since=mark, timeout=5)[0]
        assert ev["listeners_added"] == f"127.0.0.1:{extra}", ev
        on_new = RawClient(extra, "/")  # the new listener accepts at once
        on_new.send(OP_TEXT, b"new")
        assert on_new.recv_message() == (OP_TEXT, b"new")

        # Removed: its socket closes, its live session stays, the first listener and its
        # session are untouched.
        mark = w.log.mark()
        write(w, make_config([a], listeners=[first]))
        os.kill(w.pid, signal.SIGHUP)
        ev = w.log.wait("config.reload", since=mark, timeout=5)[0]
        assert ev["listeners_removed"] == f"127.0.0.1:{extra}", ev
        try:
            RawClient(extra, "/").close()
            raise AssertionError("the removed listener still accepts")
        except ConnectionRefusedError:
            pass
        on_new.send(OP_TEXT, b"still")
        assert on_new.recv_message() == (OP_TEXT, b"still")
        old.send(OP_TEXT, b"old")
        assert old.recv_message() == (OP_TEXT, b"old")
        c = RawClient(w.port, "/")
        c.send(OP_TEXT, b"fresh")
        assert c.recv_message() == (OP_TEXT, b"fresh")
        c.close()
        on_new.close()

        # A port already in use refuses the whole reload; the running generation stays.
        mark = w.log.mark()
        write(w, make_config([a], listeners=[first, {"address": "127.0.0.1", "port": py.port}]))
        os.kill(w.pid, signal.SIGHUP)
        ev = w.log.wait("config.reload_failed", since=mark, timeout=5)[0]
        assert f"listener 127.0.0.1:{py.port}" in ev["error"], ev
        old.send(OP_TEXT, b"after")
        assert old.recv_message() == (OP_TEXT, b"after")
    finally:
        old.close()
    assert w.alive()


def test_weir_reload_command_checks_then_signals(weir, peers, tmp_path):
    py = peers.py("echo", "--no-compression")
    pid_file = tmp_path / "weir.pid"
    a = {"name": "a", "match": {"path_prefix": "/a"}, "upstreams": [py.addr]}
    w = weir.start(make_config([a]), args=("--pid-file", str(pid_file)))
    assert pid_file.read_text().strip() == str(w.pid)

    def reload(*extra):
        return subprocess.run([weir_bin(), "reload", "--pid-file", str(pid_file), *extra],
                              capture_output=True, text=True, timeout=10)

    # A bad file is refused before any signal: the running config stays, nothing is logged.
    w.config_path.write_text("listeners: [\n")
    mark = w.log.mark()
    r = reload("-c", str(w.config_path))
    assert r.returncode == 1, r
    assert r.stderr.startswith(f"{w.config_path}:"), r.stderr
    assert "not signalled" in r.stderr
    time.sleep(0.3)
    assert not w.log.find("config.reload", since=mark) and not w.log.find("config.reload_failed", since=mark)

    b = {"name": "b", "match": {"path_prefix": "/b"}, "upstreams": [py.addr]}
    write(w, make_config([a, b]))
    r = reload("-c", str(w.config_path))
    assert r.returncode == 0, r
    ev = w.log.wait("config.reload", since=mark, timeout=5)[0]
    assert ev["added"] == "b", ev
    c = RawClient(w.port, "/b")
    c.send(OP_TEXT, b"b")
    assert c.recv_message() == (OP_TEXT, b"b")
    c.close()

    missing = subprocess.run([weir_bin(), "reload", "--pid-file", str(tmp_path / "none.pid")],
                             capture_output=True, text=True, timeout=10)
    assert missing.returncode == 1 and "no process id" in missing.stderr, missing
    assert w.terminate() == 0
    assert not pid_file.exists()  # removed at a clean exit
