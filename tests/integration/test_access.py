"""Access control on the real binary: ip_policy (first match wins, 403 named after the
filter and counted) and trusted_proxies: X-Forwarded-For is believed only from a trusted
peer, so a spoofed header from anyone else changes nothing."""

from __future__ import annotations

import socket

from weirlib import build_request, new_key, read_response


def exchange_from(source: str, port: int, request: bytes):
    """One HTTP exchange from a chosen loopback source address."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(request)
        return read_response(s, 5)
    finally:
        s.close()


def upgrade(source: str, port: int, xff: str | None = None):
    headers = [("X-Forwarded-For", xff)] if xff else []
    return exchange_from(source, port, build_request("/", key=new_key(), headers=headers))


def test_ip_policy_first_match_wins_and_refusals_name_the_filter(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "r", "upstreams": [rb.addr],
                      "ip_policy": [{"deny": "127.0.0.3"}, {"allow": "127.0.0.0/8"}]}])
    assert upgrade("127.0.0.2", w.port).status == 101
    r = upgrade("127.0.0.3", w.port)
    assert r.status == 403 and b"client address not allowed" in r.body
    ev = w.log.wait("handshake.reject", timeout=5)[0]
    assert (ev["status"], ev["filter"], ev["client"].split(":")[0]) == (403, "ip_policy", "127.0.0.3"), ev
    m = w.metrics()
    assert m['weir_handshakes_failed_total{route="r",status="403",reason="ip_policy"}'] == 1
    assert m['weir_filter_refusals_total{route="r",filter="ip_policy"}'] == 1


def test_forwarded_for_counts_only_from_a_trusted_proxy(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "r", "upstreams": [rb.addr], "ip_policy": {"allow": ["198.51.100.0/24"]}}],
                    trusted_proxies=["127.0.0.2"])
    # From the trusted proxy: the client it names is checked.
    assert upgrade("127.0.0.2", w.port, "198.51.100.7").status == 101
    assert upgrade("127.0.0.2", w.port, "203.0.113.1").status == 403
    # What a client wrote left of the proxy's own hop is not believed.
    assert upgrade("127.0.0.2", w.port, "198.51.100.7, 203.0.113.1").status == 403
    # A spoofed header from an untrusted peer changes nothing: the peer is checked.
    assert upgrade("127.0.0.1", w.port, "198.51.100.7").status == 403
    assert upgrade("127.0.0.5", w.port, "198.51.100.7").status == 403
    evs = w.log.wait("handshake.reject", timeout=5, count=4)
    assert [e.get("client_ip") for e in evs] == ["203.0.113.1", "203.0.113.1", None, None], evs
    opened = w.log.wait("conn.open", timeout=5)[0]
    assert opened["client_ip"] == "198.51.100.7" and opened["client"].startswith("127.0.0.2:")


def exchange_raw(source: str, port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Sends data from a chosen source address; returns all bytes until the peer closes."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk or b"\r\n\r\n" in out + chunk:
                out += chunk
                break
            out += chunk
        return out
    finally:
        s.close()


def proxy_v2(src: str, sport: int) -> bytes:
    import struct
    body = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", sport, 8080)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def test_proxy_protocol_is_read_only_from_trusted_proxies(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "r", "upstreams": [rb.addr], "ip_policy": {"allow": ["198.51.100.0/24"]}}],
                    listeners=[{"address": "127.0.0.1", "port": 0, "proxy_protocol": True}],
                    trusted_proxies=["127.0.0.2"])
    req = build_request("/", key=new_key())
    # v1 and v2 from the trusted proxy: the client they name is checked.
    assert exchange_raw("127.0.0.2", w.port, b"PROXY TCP4 198.51.100.7 127.0.0.1 4000 8080\r\n" + req) \
        .startswith(b"HTTP/1.1 101")
    assert exchange_raw("127.0.0.2", w.port, proxy_v2("198.51.100.8", 4001) + req).startswith(b"HTTP/1.1 101")
    assert exchange_raw("127.0.0.2", w.port, b"PROXY TCP4 203.0.113.1 127.0.0.1 4000 8080\r\n" + req) \
        .startswith(b"HTTP/1.1 403")
    opened = w.log.wait("conn.open", timeout=5, count=2)
    assert sorted(e["client_ip"] for e in opened) == ["198.51.100.7", "198.51.100.8"]
    # The trusted proxy must send one: without it, the connection is closed unanswered.
    assert exchange_raw("127.0.0.2", w.port, req) == b""
    ev = w.log.wait("handshake.reject", timeout=5, status=400)[0]
    assert ev["reason"].startswith("no PROXY protocol header"), ev
    # From anyone else a PROXY line is not a header but a bad request, and the peer is checked.
    assert exchange_raw("127.0.0.1", w.port, b"PROXY TCP4 198.51.100.7 127.0.0.1 4000 8080\r\n" + req) \
        .startswith(b"HTTP/1.1 400")
    assert exchange_raw("127.0.0.1", w.port, req).startswith(b"HTTP/1.1 403")
    m = w.metrics()
    assert m['weir_handshakes_failed_total{route="",status="400",reason="proxy_protocol"}'] == 1


def test_proxy_protocol_needs_trusted_proxies(weir, tmp_path):
    import subprocess
    from weirlib import make_config, to_yaml, weir_bin
    cfg = make_config([{"upstreams": ["echo"]}],
                      listeners=[{"address": "127.0.0.1", "port": 0, "proxy_protocol": True}])
    p = tmp_path / "w.yaml"
    p.write_text(to_yaml(cfg) + "\n")
    r = subprocess.run([weir_bin(), "check-config", "-c", str(p)], capture_output=True, text=True, timeout=10)
    line = next(i for i, l in enumerate(p.read_text().splitlines(), 1) if "proxy_protocol" in l)
    assert r.returncode == 1 and f"{p}:{line}:" in r.stderr and "needs trusted_proxies" in r.stderr, r.stderr


def test_listener_ip_policy_applies_before_any_route(weir, peers):
    rb = peers.raw("echo")
    w = weir.routes([{"name": "r", "upstreams": [rb.addr]}],
                    listeners=[{"address": "127.0.0.1", "port": 0,
                                "ip_policy": [{"deny": "127.0.0.4"}, {"allow": "127.0.0.0/29"}]}])
    assert upgrade("127.0.0.2", w.port).status == 101
    assert upgrade("127.0.0.4", w.port).status == 403   # denied by the first rule
    assert upgrade("127.0.0.9", w.port).status == 403   # outside every allow rule
    # Refused before routing: even a path no route matches is a 403, not a 404.
    r = exchange_from("127.0.0.9", w.port, build_request("/nowhere", key=new_key()))
    assert r.status == 403 and b"client address not allowed" in r.body
    m = w.metrics()
    assert m['weir_handshakes_failed_total{route="",status="403",reason="ip_policy"}'] == 3
    assert m['weir_filter_refusals_total{route="",filter="ip_policy"}'] == 3
    assert rb.conns == [] or len(rb.conns) == 1  # only the allowed client reached the backend
