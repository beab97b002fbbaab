"""The admin listener on the real binary (docs/admin.md, docs/metrics.md): counters move by
exactly what scripted traffic did, the endpoints' statuses and JSON shapes, closing a
connection from the API, readiness flipping when upstreams go down and during a drain,
the bearer token, and counters surviving a reload."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest

from weirlib import (OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT, RawClient, build_request, close_payload,
                     http_exchange, new_key)

TOKEN = "s3cret-admin-token-0123"


def delta(after: dict, before: dict, key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def wait_for(pred, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_counters_move_by_exactly_the_traffic(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr]}])
    before = w.metrics()
    c = RawClient(w.port, "/")
    n_text, n_bin = 7, 3
    for i in range(n_text):
        c.send(OP_TEXT, b"t%d" % i)
        assert c.recv_message() == (OP_TEXT, b"t%d" % i)
    for i in range(n_bin):
        c.send(OP_BINARY, bytes([i]) * 10)
        assert c.recv_message() == (OP_BINARY, bytes([i]) * 10)
    c.send(OP_PING, b"p")
    c.send(OP_CLOSE, close_payload(1000, "done"))
    f = c.expect_close()
    assert f.close_code == 1000
    c.close()
    r = 'route="chat"'
    after = wait_for(lambda: (m := w.metrics()).get(f'weir_connections_active{{{r}}}') == 0
                     and m.get(f'weir_connection_duration_seconds_count{{{r}}}') == 1 and m, what="session end")
    c2u, u2c = 'direction="client_to_upstream"', 'direction="upstream_to_client"'
    assert delta(after, before, f'weir_handshakes_total{{{r}}}') == 1
    assert delta(after, before, f'weir_messages_total{{{r},{c2u}}}') == n_text + n_bin
    assert delta(after, before, f'weir_messages_total{{{r},{u2c}}}') == n_text + n_bin
    assert delta(after, before, f'weir_frames_total{{{r},{c2u},opcode="text"}}') == n_text
    assert delta(after, before, f'weir_frames_total{{{r},{c2u},opcode="binary"}}') == n_bin
    assert delta(after, before, f'weir_frames_total{{{r},{c2u},opcode="ping"}}') == 1
    assert delta(after, before, f'weir_frames_total{{{r},{c2u},opcode="close"}}') == 1
    # Client frames: 2-byte header + 4-byte mask + payload; ping 1, close 2+4.
    sent = sum(6 + len(b"t%d" % i) for i in range(n_text)) + n_bin * (6 + 10) + (6 + 1) + (6 + 6)
    assert delta(after, before, f'weir_bytes_total{{{r},{c2u}}}') == sent
    assert after[f'weir_close_frames_total{{{r},side="client",event="received",code="1000"}}'] == 1
    assert after[f'weir_close_frames_total{{{r},side="upstream",event="sent",code="1000"}}'] == 1
    assert after[f'weir_handshake_duration_seconds_count{{{r}}}'] == 1
    assert after['weir_connections_accepted_total{listener="127.0.0.1:0"}'] - \
        before.get('weir_connections_accepted_total{listener="127.0.0.1:0"}', 0) == 1
    stats = w.admin_json("/admin/stats")
    assert stats["messages"] == {"client_to_upstream": n_text + n_bin, "upstream_to_client": n_text + n_bin}
    assert stats["handshakes"]["upgraded_total"] == 1
    assert stats["close_codes"]["1000"] >= 1
    assert stats["routes"][0]["name"] == "chat"
    assert stats["routes"][0]["upstreams"][0] == {"address": rb.addr, "healthy": True, "active": 0,
                                                   "connect_failures_total": 0}


def test_refusals_are_counted_by_status_and_reason(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "app", "match": {"path": "/app"}, "upstreams": [rb.addr],
                      "origins": ["https://ok.example"]}])
    assert http_exchange(w.port, build_request("/nowhere", key=new_key())).status == 404
    assert http_exchange(w.port, build_request("/app", key=new_key(),
                                               headers=[("Origin", "https://evil.example")])).status == 403
    assert http_exchange(w.port, b"GET /app HTTP/1.1\r\nHost: x\r\n\r\n").status == 426
    m = w.metrics()
    assert m['weir_handshakes_failed_total{route="",status="404",reason="no_route"}'] == 1
    assert m['weir_handshakes_failed_total{route="app",status="403",reason="origins"}'] == 1
    assert m['weir_handshakes_failed_total{route="app",status="426",reason="not_websocket"}'] == 1
    assert m['weir_filter_refusals_total{route="app",filter="origins"}'] == 1
    stats = w.admin_json("/admin/stats")
    assert stats["handshakes"]["failed_by_reason"] == {"no_route": 1, "origins": 1, "not_websocket": 1}


def test_upstream_down_fails_readiness_and_counts_the_refused_connect(weir, peers):
    rb = peers.raw("echo")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{s.getsockname()[1]}"
    s.close()  # nothing listens there
    w = weir.routes([{"name": "live", "match": {"path": "/live"}, "upstreams": [rb.addr]},
                     {"name": "dead", "match": {"path": "/dead"}, "upstreams": [dead]}],
                    admin={"upstream_probe_interval": "200ms"})
    # Until the first probe answers, the reason is "not probed yet".
    status, _, body = wait_for(lambda: (r := w.admin("/readyz"))[0] == 503 and b"refused" in r[2] and r,
                               what="readyz naming the dead route")
    doc = json.loads(body)
    assert doc["status"] == "not_ready"
    assert doc["reasons"] == [f"route dead: no healthy upstream ({dead}: Connection refused)"], doc
    assert http_exchange(w.port, build_request("/dead", key=new_key())).status == 502
    m = w.metrics()
    assert m[f'weir_upstream_connect_failures_total{{route="dead",upstream="{dead}",reason="refused"}}'] == 1
    assert m[f'weir_upstream_healthy{{upstream="{dead}"}}'] == 0
    assert m[f'weir_upstream_healthy{{upstream="{rb.addr}"}}'] == 1
    assert m['weir_handshakes_failed_total{route="dead",status="502",reason="upstream_failed"}'] == 1


def test_readiness_turns_when_the_only_upstream_goes_and_comes_back(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "r", "upstreams": [rb.addr]}], admin={"upstream_probe_interval": "200ms"})
    wait_for(lambda: w.admin("/readyz")[0] == 200, what="ready")
    port = rb.port
    rb.close()
    wait_for(lambda: w.admin("/readyz")[0] == 503, what="not ready once the upstream is gone")
    # Back on the same port.
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(8)
    try:
        wait_for(lambda: w.admin("/readyz")[0] == 200, what="ready again")
    finally:
        s.close()


def test_readiness_fails_at_once_when_a_drain_starts(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr]}], shutdown={"drain": "3s"})
    assert w.admin("/readyz")[0] == 200
    c = RawClient(w.port, "/")  # keeps the drain going
    try:
        w.proc.send_signal(signal.SIGTERM)
        w.log.wait("shutdown", timeout=5)
        status, _, body = w.admin("/readyz")
        assert status == 503 and json.loads(body)["reasons"] == ["draining"]
        assert w.admin("/healthz")[0] == 200  # alive, just not taking traffic
        assert w.metrics()["weir_draining"] == 1
    finally:
        c.close()
    assert w.proc.wait(timeout=10) == 0
    w.returncode = 0


def test_connections_list_pages_and_close_sends_the_code(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "chat", "upstreams": [rb.addr]}])
    clients = [RawClient(w.port, "/") for _ in range(3)]
    try:
        for i, c in enumerate(clients):
            c.send(OP_TEXT, b"x" * (i + 1))
            assert c.recv_message() == (OP_TEXT, b"x" * (i + 1))
        page = w.admin_json("/admin/connections?limit=2")
        assert (page["total"], page["offset"], page["limit"], len(page["connections"])) == (3, 0, 2, 2)
        rest = w.admin_json("/admin/connections?offset=2&limit=2")
        assert len(rest["connections"]) == 1
        conns = page["connections"] + rest["connections"]
        assert [c["id"] for c in conns] == sorted(c["id"] for c in conns)
        for c in conns:
            assert set(c) == {"id", "client", "route", "upstream", "age_seconds", "state", "user", "token_id", "trace_id",
                              "bytes_in", "bytes_out", "messages_in", "messages_out"}
            assert (c["route"], c["upstream"], c["state"], c["messages_in"], c["messages_out"]) == \
                ("chat", rb.addr, "relay", 1, 1)
        assert sorted(c["bytes_in"] for c in conns) == [7, 8, 9]
        victim = conns[1]
        status, _, body = w.admin(f"/admin/connections/{victim['id']}/close", method="POST",
                                  body=json.dumps({"code": 4001, "reason": "admin says bye"}).encode())
        assert (status, json.loads(body)) == (202, {"id": victim["id"], "closing": True})
        port = int(victim["client"].rsplit(":", 1)[1])
        mine = next(c for c in clients if c.sock.getsockname()[1] == port)
        f = mine.expect_close(timeout=5)
        assert (f.close_code, f.close_reason) == (4001, "admin says bye")
        assert w.admin("/admin/connections/999999999/close", method="POST")[0] == 404
        assert w.admin(f"/admin/connections/{conns[0]['id']}/close", method="POST",
                       body=b'{"code": 1005}')[0] == 400
        assert w.admin(f"/admin/connections/{conns[0]['id']}/close", method="POST", body=b"not json")[0] == 400
        assert w.admin("/admin/connections")[0] == 200
        assert w.admin("/admin/connections", method="DELETE")[0] == 405
        assert w.admin("/admin/connections?limit=x")[0] == 400
        assert w.admin("/nope")[0] == 404
    finally:
        for c in clients:
            c.close()


def test_token_guards_everything_but_the_probes(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr]}], admin={"token": TOKEN})
    assert w.admin("/healthz")[0] == 200
    assert w.admin("/readyz")[0] == 200
    status, headers, _ = w.admin("/metrics")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    assert w.admin("/admin/stats", token="wrong-token-wrong-token")[0] == 401
    assert w.admin("/admin/stats", token=TOKEN)[0] == 200
    assert w.admin("/metrics", token=TOKEN)[0] == 200
    cfg = w.admin_json("/admin/config", token=TOKEN)
    assert cfg["admin"]["token"] == "<redacted>"
    assert TOKEN not in json.dumps(cfg)
    assert w.admin("/")[0] == 200  # the page asks for the token itself


def test_admin_without_token_must_be_loopback(weir, tmp_path):
    from weirlib import to_yaml, make_config, weir_bin
    import subprocess
    cfg = make_config([{"upstreams": ["echo"]}], admin={"address": "0.0.0.0", "port": 0})
    p = tmp_path / "w.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    r = subprocess.run([weir_bin(), "check-config", "-c", str(p)], capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    line = next(i for i, l in enumerate(p.read_text().splitlines(), 1) if "0.0.0.0" in l)
    assert f"{p}:{line}:" in r.stderr and "not a loopback address: set admin.token" in r.stderr, r.stderr


def test_a_reload_does_not_reset_counters(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "keep", "upstreams": [rb.addr]}])
    key = 'weir_messages_total{route="keep",direction="client_to_upstream"}'

    def send(n):
        c = RawClient(w.port, "/")
        for i in range(n):
            c.send(OP_TEXT, b"m")
            assert c.recv_message() == (OP_TEXT, b"m")
        c.close()

    send(4)
    assert w.metrics()[key] == 4
    text = w.config_path.read_text().replace("drain: 2s", "drain: 3s")
    w.config_path.write_text(text)
    mark = w.log.mark()
    w.proc.send_signal(signal.SIGHUP)
    w.log.wait("config.reload", timeout=5, since=mark)
    send(5)
    m = w.metrics()
    assert m[key] == 9
    assert m["weir_config_generation"] == 2
    assert m['weir_config_reloads_total{result="ok"}'] == 1


def test_metrics_exposition_is_well_formed(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr]}])
    status, headers, body = w.admin("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    families = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in families, f"{name} declared twice"
            families[name] = kind
    for name in ("weir_build_info", "weir_connections_open", "process_cpu_seconds_total", "process_open_fds",
                 "process_max_fds", "process_resident_memory_bytes", "process_start_time_seconds",
                 "weir_log_lines_dropped_total", "weir_buffer_pool_buffers"):
        assert name in families, name
    for name, kind in families.items():
        if kind == "counter":
            assert name.endswith("_total"), name


def test_head_answers_headers_only_and_keeps_the_connection_in_step(weir, peers):
    import http.client
    rb = peers.raw("echo")
    w = weir.routes([{"upstreams": [rb.addr]}])
    conn = http.client.HTTPConnection("127.0.0.1", w.admin_port, timeout=5)
    try:
        conn.request("HEAD", "/admin/stats")
        r = conn.getresponse()
        body = r.read()
        assert r.status == 200 and body == b"" and int(r.getheader("content-length")) > 10
        # The same connection: the next answer is read as an answer, not as a body.
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        assert (r.status, json.loads(r.read())["status"]) == (200, "ok")
    finally:
        conn.close()


def test_a_configured_admin_port_that_is_taken_stops_weir(weir, peers, tmp_path):
    import subprocess
    from weirlib import make_config, to_yaml, weir_bin
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        cfg = make_config([{"upstreams": ["echo"]}], admin={"port": s.getsockname()[1]})
        p = tmp_path / "w.yaml"
        p.write_text(to_yaml(cfg) + "\n")
        r = subprocess.run([weir_bin(), "run", "-c", str(p)], capture_output=True, text=True, timeout=20)
    finally:
        s.close()
    assert r.returncode == 1, r
    events = [json.loads(line) for line in r.stdout.splitlines()]
    bad = [e for e in events if e["event"] == "admin_unavailable"]
    assert bad and bad[0]["level"] == "error" and "in use" in bad[0]["error"], r.stdout
    assert not any(e["event"] == "started" for e in events)


def test_a_reload_rotates_the_token_and_readiness_details_need_it(weir, peers):
    rb = peers.raw("echo")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{s.getsockname()[1]}"
    s.close()
    w = weir.routes([{"name": "dead", "upstreams": [dead]}],
                    admin={"token": TOKEN, "upstream_probe_interval": "200ms"})
    status, _, body = wait_for(lambda: (r := w.admin("/readyz"))[0] == 503 and r, what="not ready")
    assert json.loads(body) == {"status": "not_ready"}  # no upstream addresses for strangers
    reasons = json.loads(w.admin("/readyz", token=TOKEN)[2])["reasons"]
    assert reasons and dead in reasons[0]
    new = "another-token-0123456789"
    w.config_path.write_text(w.config_path.read_text().replace(TOKEN, new))
    mark = w.log.mark()
    w.proc.send_signal(signal.SIGHUP)
    w.log.wait("config.reload", timeout=5, since=mark)
    assert w.admin("/admin/stats", token=TOKEN)[0] == 401
    assert w.admin("/admin/stats", token=new)[0] == 200
