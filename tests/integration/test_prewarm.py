"""Pre-warmed backend connections (upstream group `prewarm`, route
`generic_upstream_handshake`), on the real binary with a real Python `websockets` backend
(peers/gateback.py) that counts the upgrades it answers and can hold them or kill idle
connections on command:

- a burst of 100 connects to a pre-warmed group is served while the backend answers no
  upgrade at all (it holds every one): no backend handshake on the critical path; every
  client echoes through its pooled connection;
- pooled connections the backend kills (TCP abort or Close 1001) are discarded, never handed
  out: every client that comes right after gets a working session;
- a route on the same group without the flag connects as usual (the backend sees the
  client's request) and takes nothing from the pool;
- failed fills count for passive health; wss:// members are pooled over TLS.
"""

from __future__ import annotations

import asyncio
import time

import aiohelp
from test_tls import tls_backend
from tlscerts import certs  # noqa: F401 (fixture)
from weirlib import PEERS_DIR, PYTHON, Peer, free_port


def gate_backend(tmp_path) -> tuple[Peer, object]:
    control = tmp_path / "control"
    control.mkdir()
    return Peer([PYTHON, str(PEERS_DIR / "gateback.py"), "--control", str(control)]), control


def start(weir, backend, size: int, **prewarm):
    return weir.routes(
        [{"name": "generic", "match": {"path": "/g"}, "upstream_group": "pool", "generic_upstream_handshake": True},
         {"name": "plain", "match": {"path": "/plain"}, "upstream_group": "pool"}],
        upstream_groups=[{"name": "pool", "members": [backend.addr],
                          "prewarm": {"size": size, "path": "/pool", **prewarm}}],
        workers=1)  # one pool: its size is per worker


def metric(w, name: str, **labels: str) -> float:
    total = 0.0
    for key, value in w.metrics().items():
        if key.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in key for k, v in labels.items()):
            total += value
    return total


def wait_for(what, cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


async def echo_session(url: str, msg: str, headers=None) -> str:
    async with aiohelp.connect(url, extra_headers=headers or {}) as ws:
        await ws.send(msg)
        return await ws.recv()


def test_burst_of_100_gets_pooled_connections_without_a_backend_handshake(weir, tmp_path):
    backend, control = gate_backend(tmp_path)
    try:
        w = start(weir, backend, 100)
        wait_for("a full pool", lambda: metric(w, "weir_upstream_prewarm_idle") == 100)
        [member] = [m for g in w.admin_json("/admin/upstreams")["groups"] if g["group"] == "pool"
                    for m in g["members"]]
        assert member["upstream"] == backend.addr and member["prewarm_idle"] == 100
        # Every pooled upgrade went to the prewarm path, without any client header.
        # (The backend's log may trail the gauge by a line or two.)
        opened = backend.log.wait("handshake", count=100)
        assert len(opened) == 100 and {e["path"] for e in opened} == {"/pool"}
        assert {e["user_agent"] for e in opened} == {"weir-prewarm"}

        (control / "gate").write_text("")  # from now on the backend answers no upgrade
        mark = backend.log.mark()

        async def burst():
            return await asyncio.gather(*(echo_session(w.url("/g"), f"m{i}") for i in range(100)))
        replies = aiohelp.run(burst(), 30)
        assert replies == [f"m{i}" for i in range(100)]
        # The backend answered nothing during the burst (the refills are held at the gate).
        assert backend.log.find("handshake", since=mark) == []
        assert len(backend.log.find("held", since=mark)) >= 1  # refills did start
        assert metric(w, "weir_upstream_prewarm_hits_total") == 100
        assert metric(w, "weir_upstream_prewarm_misses_total") == 0

        (control / "gate").unlink()
        wait_for("the pool refilled", lambda: metric(w, "weir_upstream_prewarm_idle") == 100)
    finally:
        backend.stop()


def test_connections_killed_by_the_backend_are_never_handed_out(weir, tmp_path):
    backend, control = gate_backend(tmp_path)
    try:
        w = start(weir, backend, 10)
        wait_for("a full pool", lambda: metric(w, "weir_upstream_prewarm_idle") == 10)
        mark = backend.log.mark()
        (control / "kill").write_text("")
        killed = backend.log.wait("killed", since=mark, timeout=5)[0]["n"]
        assert killed == 10

        # Right away: a dead pooled connection handed out would fail this client's echo.
        async def clients():
            return await asyncio.gather(*(echo_session(w.url("/g"), f"k{i}") for i in range(10)))
        assert aiohelp.run(clients(), 30) == [f"k{i}" for i in range(10)]
        wait_for("the 10 discards counted",
                 lambda: metric(w, "weir_upstream_prewarm_discarded_total", reason="closed") >= 10)
        wait_for("the pool refilled", lambda: metric(w, "weir_upstream_prewarm_idle") == 10)
    finally:
        backend.stop()


def test_a_route_without_the_flag_does_not_use_the_pool(weir, tmp_path):
    backend, _ = gate_backend(tmp_path)
    try:
        w = start(weir, backend, 3)
        wait_for("a full pool", lambda: metric(w, "weir_upstream_prewarm_idle") == 3)
        mark = backend.log.mark()
        reply = aiohelp.run(echo_session(w.url("/plain?x=1"), "plain", {"X-Test": "client-header"}), 15)
        assert reply == "plain"
        # Its own upgrade, with the client's request, on the critical path.
        hs = backend.log.wait("handshake", since=mark, timeout=5)
        assert [(e["path"], e["x_test"]) for e in hs] == [("/plain?x=1", "client-header")]
        assert metric(w, "weir_upstream_prewarm_hits_total") == 0
        assert metric(w, "weir_upstream_prewarm_misses_total") == 0
        assert metric(w, "weir_upstream_prewarm_idle") == 3

        # The generic route on the same group does take one, and the client's header stays behind.
        mark = backend.log.mark()
        assert aiohelp.run(echo_session(w.url("/g"), "generic", {"X-Test": "client-header"}), 15) == "generic"
        assert metric(w, "weir_upstream_prewarm_hits_total") == 1
        refill = backend.log.wait("handshake", since=mark, timeout=5)
        assert [(e["path"], e["x_test"]) for e in refill] == [("/pool", "")]
    finally:
        backend.stop()


def test_an_empty_pool_falls_back_to_a_normal_connect(weir, tmp_path):
    backend, control = gate_backend(tmp_path)
    try:
        w = start(weir, backend, 1)
        wait_for("a full pool", lambda: metric(w, "weir_upstream_prewarm_idle") == 1)
        (control / "gate").write_text("")  # the refill after the first take waits

        async def two():
            first = await echo_session(w.url("/g"), "one")
            # The pool is empty: this one connects, and waits at the gate like the refill.
            task = asyncio.ensure_future(echo_session(w.url("/g"), "two"))
            await asyncio.sleep(0.5)
            assert not task.done()
            (control / "gate").unlink()
            return first, await task
        assert aiohelp.run(two(), 20) == ("one", "two")
        assert metric(w, "weir_upstream_prewarm_hits_total") == 1
        assert metric(w, "weir_upstream_prewarm_misses_total") == 1
    finally:
        backend.stop()


def test_failed_fills_count_as_passive_health_failures(weir, tmp_path):
    """A pool's fills are connections to the member like a session's: a member where
    nothing listens is ejected by its failed fills alone, before any client tries it, and
    new clients of the generic route go to the other member."""
    backend, _ = gate_backend(tmp_path)
    try:
        dead = f"127.0.0.1:{free_port()}"
        w = weir.routes(
            [{"name": "generic", "match": {"path": "/g"}, "upstream_group": "pool",
              "generic_upstream_handshake": True}],
            upstream_groups=[{"name": "pool", "members": [dead, backend.addr], "retries": 0,
                              "outlier_detection": {"consecutive_failures": 3, "base_ejection": "30s"},
                              "prewarm": {"size": 2, "path": "/pool"}}],
            workers=1)
        ev = w.log.wait("upstream.eject", timeout=10)[0]
        assert ev["upstream"] == dead and ev["group"] == "pool"
        states = {m["upstream"]: m for g in w.admin_json("/admin/upstreams")["groups"] for m in g["members"]}
        assert states[dead]["ejected"] is True and states[dead]["prewarm_idle"] == 0
        assert states[backend.addr]["ejected"] is False
        assert metric(w, "weir_upstream_ejections_total", upstream=dead) == 1
        assert metric(w, "weir_upstream_prewarm_fill_failures_total", upstream=dead) >= 3
        async def four():
            return await asyncio.gather(*(echo_session(w.url("/g"), f"m{i}") for i in range(4)))
        replies = aiohelp.run(four(), 20)
        assert replies == [f"m{i}" for i in range(4)]
        assert metric(w, "weir_upstream_prewarm_hits_total", upstream=dead) == 0
    finally:
        backend.stop()


def test_wss_members_are_pooled_over_tls(weir, peers, certs):
    """A wss:// member's pool speaks TLS with the group's upstream_tls (CA, SNI, name check),
    and a session takes the TLS session along with the socket: its messages go through the
    pooled connection (the backend counts them there), with no new upgrade for the client's
    path. A CA that did not sign the backend fails every fill, with the certificate error."""
    back = tls_backend(certs.backend)  # CN=weir-backend, DNS:localhost
    peers.peers.append(back)
    member = f"wss://localhost:{back.port}"
    w = weir.routes(
        [{"name": "generic", "match": {"path": "/g"}, "upstream_group": "pool", "generic_upstream_handshake": True},
         {"name": "wrong", "match": {"path": "/w"}, "upstream_group": "wrongca", "generic_upstream_handshake": True}],
        upstream_groups=[{"name": "pool", "members": [member], "upstream_tls": {"ca": str(certs.ca)},
                          "prewarm": {"size": 3, "path": "/pool"}},
                         {"name": "wrongca", "members": [member], "upstream_tls": {"ca": str(certs.ca2)},
                          "prewarm": {"size": 1, "path": "/never"}}],
        workers=1)
    wait_for("a full pool", lambda: metric(w, "weir_upstream_prewarm_idle", group="pool") == 3)
    opened = back.log.wait("open", count=3)
    assert {(e["path"], e["sni"]) for e in opened} == {("/pool", "localhost")}, opened
    mark = back.log.mark()

    async def three():
        return await asyncio.gather(*(echo_session(w.url("/g"), f"tls{i}") for i in range(3)))
    assert aiohelp.run(three(), 20) == ["tls0", "tls1", "tls2"]
    assert metric(w, "weir_upstream_prewarm_hits_total", group="pool") == 3
    assert metric(w, "weir_upstream_prewarm_misses_total", group="pool") == 0
    # The sessions' messages went through the pooled connections; every upgrade the backend
    # saw since was a refill on the pool's path, never the client's.
    closed = back.log.wait("closed", count=3, since=mark)
    assert sorted(e["received"] for e in closed) == [1, 1, 1]
    assert {e["conn"] for e in closed} <= {e["conn"] for e in opened}
    assert {e["path"] for e in back.log.find("open", since=mark)} <= {"/pool"}

    ev = w.log.wait("upstream.prewarm_fail", group="wrongca")[0]
    assert "certificate" in ev["error"], ev
    assert metric(w, "weir_upstream_prewarm_idle", group="wrongca") == 0
