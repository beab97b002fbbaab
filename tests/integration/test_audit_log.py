"""The audit log on the real binary (docs/logging.md): every line is JSON with the common
fields, connection events carry the id and the W3C trace id that the backend also gets in
traceparent, log_messages logs sampled metadata and never payloads, and SIGUSR1 reopens a
log file that logrotate moved."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

from weirlib import (OP_CONT, OP_TEXT, RawClient, build_request, http_exchange, make_config, new_key, to_yaml,
                     weir_bin)

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def test_every_line_is_json_with_the_common_fields(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "r", "match": {"path": "/r"}, "upstreams": [rb.addr]}])
    assert http_exchange(w.port, build_request("/elsewhere", key=new_key())).status == 404
    c = RawClient(w.port, "/r")
    c.send(OP_TEXT, b"hello")
    assert c.recv_message() == (OP_TEXT, b"hello")
    c.close()
    w.log.wait("conn.close", timeout=5)
    assert w.terminate() == 0
    assert w.log.raw, "no log lines"
    for line in w.log.raw:
        ev = json.loads(line)  # every line parses
        assert list(ev)[:3] == ["ts", "level", "event"], line
        assert TS.match(ev["ts"]), line
        assert ev["level"] in ("debug", "info", "warn", "error"), line
    reject = w.log.find("handshake.reject")[0]
    assert (reject["status"], reject["path"]) == (404, "/elsewhere")
    assert HEX32.match(reject["trace_id"]), reject
    opened, closed = w.log.find("conn.open")[0], w.log.find("conn.close")[0]
    assert opened["id"] == closed["id"] and opened["trace_id"] == closed["trace_id"]
    assert HEX32.match(opened["trace_id"])
    assert opened["handshake_us"] > 0
    assert (closed["msgs_in"], closed["msgs_out"], closed["closed_by"]) == (1, 1, "client")


def test_the_clients_trace_is_kept_and_the_backend_gets_its_own_span(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr]}])
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    given = f"00-{trace}-00f067aa0ba902b7-01"
    c = RawClient(w.port, "/", headers=[("traceparent", given), ("tracestate", "vendor=x")])
    try:
        conn = rb.wait_conn()
        sent = conn.headers["traceparent"]
        m = TRACEPARENT.match(sent)
        assert m, sent
        assert m.group(1) == trace and m.group(3) == "01"
        assert m.group(2) != "00f067aa0ba902b7"  # Weir's hop, not the client's span
        assert conn.headers["tracestate"] == "vendor=x"  # the trace goes on: its state too
        assert w.log.wait("conn.open", timeout=5)[0]["trace_id"] == trace
        listed = w.admin_json("/admin/connections")["connections"]
        assert [x["trace_id"] for x in listed] == [trace]
    finally:
        c.close()
    # No (or a broken) traceparent: a new trace, which the backend gets too.
    for n, headers in ((2, []), (3, [("traceparent", "00-zzzz-00f067aa0ba902b7-01")])):
        mark = w.log.mark()
        c = RawClient(w.port, "/", headers=headers)
        try:
            ev = w.log.wait("conn.open", timeout=5, since=mark)[0]
            assert HEX32.match(ev["trace_id"]) and ev["trace_id"] != trace
            conn = rb.wait_conn(n)
            assert TRACEPARENT.match(conn.headers["traceparent"]).group(1) == ev["trace_id"]
        finally:
            c.close()


def test_log_messages_logs_metadata_never_payloads(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "logged", "match": {"path": "/all"}, "upstreams": [rb.addr], "log_messages": True},
                     {"name": "sampled_out", "match": {"path": "/none"}, "upstreams": [rb.addr],
                      "log_messages": {"sample": 0}}])
    c = RawClient(w.port, "/all")
    c.send(OP_TEXT, b"secret-one")
    assert c.recv_message() == (OP_TEXT, b"secret-one")
    c.send(OP_TEXT, b"secret-", fin=False)
    c.send(OP_CONT, b"two!")
    assert c.recv_message() == (OP_TEXT, b"secret-two!")
    c.close()
    evs = w.log.wait("message", timeout=5, count=4)
    assert [(e["direction"], e["size"], e["frames"], e["opcode"]) for e in evs
            if e["direction"] == "client_to_upstream"] == [("client_to_upstream", 10, 1, "text"),
                                                           ("client_to_upstream", 11, 2, "text")]
    assert all(e["route"] == "logged" and HEX32.match(e["trace_id"]) for e in evs)
    assert not any("secret" in line for line in w.log.raw)
    c = RawClient(w.port, "/none")
    c.send(OP_TEXT, b"x")
    assert c.recv_message() == (OP_TEXT, b"x")
    c.close()
    w.log.wait("conn.close", timeout=5, count=2)
    assert len(w.log.find("message")) == len(evs)  # sample 0: nothing more


def test_sigusr1_reopens_a_moved_log_file(tmp_path):
    log = tmp_path / "weir.log"
    cfg = make_config([{"upstreams": ["echo"]}], log={"level": "info", "output": str(log)})
    p = tmp_path / "w.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    proc = subprocess.Popen([weir_bin(), "run", "-c", str(p)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def events(path):
        return [json.loads(line)["event"] for line in path.read_text().splitlines()] if path.exists() else []

    try:
        deadline = time.monotonic() + 10
        while "started" not in events(log):
            assert time.monotonic() < deadline, "weir did not start"
            time.sleep(0.05)
        assert (log.stat().st_mode & 0o777) == 0o640
        rotated = tmp_path / "weir.log.1"
        log.rename(rotated)
        proc.send_signal(signal.SIGUSR1)
        time.sleep(0.3)  # the signal is handled on the main loop
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "started" in events(rotated) and "stopped" not in events(rotated)
    assert events(log)[-1] == "stopped" and "shutdown" in events(log)
    assert proc.stdout.read() == b""  # nothing on stdout with a file output
