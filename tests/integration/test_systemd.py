"""Weir under systemd, without systemd as PID 1: the notify protocol (Type=notify) read
from a datagram socket the test owns as NOTIFY_SOCKET, and the unit file checked with
systemd-analyze (verify, and its offline security exposure score)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from weirlib import OP_TEXT, RawClient, make_config, to_yaml, weir_bin

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "weir.service"


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def next(self, timeout: float = 5.0) -> dict[str, str]:
        """The next datagram, as its KEY=VALUE lines."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines() if "=" in line)

    def wait_for(self, key: str, timeout: float = 5.0) -> list[dict[str, str]]:
        """Datagrams up to and including the first with `key`."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {key} within {timeout}s; got {seen}"
            msg = self.next(left)
            seen.append(msg)
            if key in msg:
                return seen

    def close(self) -> None:
        self.sock.close()


def test_notify_ready_status_reload_and_stopping(weir, peers, tmp_path):
    rb = peers.raw("echo")
    ns = NotifySocket(tmp_path / "notify.sock")
    try:
        cfg = make_config([{"upstreams": [rb.addr]}])
        w = weir.start(cfg, env={"NOTIFY_SOCKET": ns.path})
        # READY=1 comes once the listeners are bound: a client can connect right after.
        ready = ns.wait_for("READY")[-1]
        assert ready["READY"] == "1" and ready["STATUS"] == "0 connections", ready
        c = RawClient(w.port, "/")
        c.send(OP_TEXT, b"hi")
        assert c.recv_message() == (OP_TEXT, b"hi")
        status = ns.wait_for("STATUS", timeout=5)[-1]
        assert status["STATUS"] == "1 connection", status

        # A good reload: RELOADING=1, then READY=1 once every worker has the new generation.
        os.kill(w.pid, signal.SIGHUP)
        msgs = ns.wait_for("READY")
        assert msgs[0].get("RELOADING") == "1" and int(msgs[0]["MONOTONIC_USEC"]) > 0, msgs
        w.log.wait("config.reload", timeout=5)

        # A bad file: refused, still serving with the running generation: READY=1 again.
        w.config_path.write_text("listeners: [\n")
        os.kill(w.pid, signal.SIGHUP)
        msgs = ns.wait_for("READY")
        assert msgs[0].get("RELOADING") == "1", msgs
        w.log.wait("config.reload_failed", timeout=5)

        # SIGTERM: STOPPING=1 when the drain begins, with the sessions still there.
        w.proc.send_signal(signal.SIGTERM)
        stopping = ns.wait_for("STOPPING")[-1]
        assert stopping["STOPPING"] == "1" and stopping["STATUS"] == "draining, 1 connection", stopping
        # The client leaves: the drain ends by itself and Weir exits 0 (terminate() would
        # send a second SIGTERM, which stops at once).
        c.close()
        w.returncode = w.proc.wait(timeout=20)
        w.log.wait_eof(timeout=5)
        assert w.returncode == 0, w.stderr[-3000:]
        assert w.log.wait("conn.close", timeout=1)[0]["closed_by"] == "client"
    finally:
        ns.close()


def test_without_notify_socket_nothing_changes(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr]}])
    c = RawClient(w.port, "/")
    c.send(OP_TEXT, b"x")
    assert c.recv_message() == (OP_TEXT, b"x")
    c.close()


def unit_for_here(tmp_path: Path) -> Path:
    """The shipped unit with its paths pointing at this build (verify checks that the
    commands exist), everything else as shipped."""
    cfg = tmp_path / "weir.yaml"
    cfg.write_text(to_yaml(make_config([{"upstreams": ["echo"]}])) + "\n")
    text = UNIT.read_text().replace("/usr/bin/weir", os.path.abspath(weir_bin())).replace("/etc/weir/weir.yaml", str(cfg))
    out = tmp_path / "weir.service"
    out.write_text(text)
    return out


def test_unit_file_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: run scripts/setup test"
    unit = unit_for_here(tmp_path)
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # verify also lints units it pulls in from this machine; only ours must be clean.
    ours = [line for line in (r.stdout + r.stderr).splitlines() if "weir.service" in line]
    assert r.returncode == 0 and not ours, r.stdout + r.stderr
    # Its ExecStartPre (check-config) accepts the config it names.
    pre = re.search(r"^ExecStartPre=(.*)$", unit.read_text(), re.M).group(1).split()
    assert subprocess.run(pre, capture_output=True, timeout=30).returncode == 0


def test_unit_file_hardening_score(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: run scripts/setup test"
    unit = unit_for_here(tmp_path)
    r = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(unit)],
                       capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    # docs/deployment.md states the figure; systemd rates up to 2.0 "OK" (0 = fully locked down).
    assert float(m.group(1)) <= 2.0, r.stdout
