"""5. Request headers forwarded to the backend: path and query, Host, cookies,
Authorization, X-Forwarded-*, Forwarded; hop-by-hop headers dropped."""

import json

from weirlib import OP_TEXT, RawClient


def _backend_view(w, path, headers, host="front.example:8080", connection="Upgrade"):
    c = RawClient(w.port, path, headers=headers, host=host, connection=connection)
    try:
        op, payload = c.recv_message(timeout=5)
        assert op == OP_TEXT
        return json.loads(payload)
    finally:
        c.close()


def _h(view, name):
    vals = [v for k, v in view["headers"] if k.lower() == name.lower()]
    assert len(vals) <= 1, f"{name} sent {len(vals)} times: {vals}"
    return vals[0] if vals else None


def test_forwarded_headers(weir, peers):
    py = peers.py("headers")
    w = weir.routes([{"upstreams": [py.addr]}])
    view = _backend_view(w, "/api/v1/stream?room=42&x=%20y", [
        ("Cookie", "session=abc123; theme=dark"),
        ("Authorization", "Bearer token-xyz"),
        ("X-Custom", "kept"),
        ("X-Hop", "must-not-pass"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Authorization", "Basic c2VjcmV0"),
        ("TE", "trailers"),
        ("User-Agent", "weir-test/1"),
    ], connection="Upgrade, X-Hop")
    assert view["path"] == "/api/v1/stream?room=42&x=%20y"
    assert _h(view, "Host") == "front.example:8080"
    assert _h(view, "Cookie") == "session=abc123; theme=dark"
    assert _h(view, "Authorization") == "Bearer token-xyz"
    assert _h(view, "X-Custom") == "kept"
    assert _h(view, "User-Agent") == "weir-test/1"
    assert _h(view, "X-Forwarded-For") == "127.0.0.1"
    assert _h(view, "X-Forwarded-Proto") == "ws"
    assert _h(view, "X-Forwarded-Host") == "front.example:8080"
    fwd = (_h(view, "Forwarded") or "").lower()
    assert "for=127.0.0.1" in fwd or 'for="127.0.0.1' in fwd, fwd
    assert "proto=ws" in fwd, fwd
    assert "host=" in fwd and "front.example:8080" in fwd, fwd
    for hop in ("X-Hop", "Keep-Alive", "Proxy-Authorization", "TE"):
        assert _h(view, hop) is None, f"hop-by-hop header {hop} was forwarded"
    # Weir's own upgrade to the backend is a valid one
    assert _h(view, "Upgrade").lower() == "websocket"
    assert _h(view, "Sec-WebSocket-Version") == "13"


def test_existing_x_forwarded_for_is_extended(weir, peers):
    py = peers.py("headers")
    w = weir.routes([{"upstreams": [py.addr]}])
    view = _backend_view(w, "/", [("X-Forwarded-For", "203.0.113.7")])
    xff = [p.strip() for p in _h(view, "X-Forwarded-For").split(",")]
    assert xff[-1] == "127.0.0.1", xff
    assert "203.0.113.7" in xff, xff
