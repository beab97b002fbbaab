"""Load balancing over upstream groups, on the real binary with real Python `websockets`
backends that report their identity (pyback.py `headers` mode: the first message names the
backend):

- each policy's distribution (weighted round robin exactly, least_conn over live sessions,
  hash on a header keeps a key on one backend);
- the signed sticky cookie: a returning client lands on its backend; a forged cookie is
  ignored and counted;
- retries: a dead member costs no client a failure, and passive health ejects it;
- passive health from live sessions: a backend that drops them is ejected;
- active health (websocket checks): a killed backend goes unhealthy and gets no new
  clients; restarted on its port, it comes back;
- drain through the admin API: no new sessions, the old ones get 1012 at the deadline;
- no available member: 503 with Retry-After, and /readyz names the group;
- a reload that removes a member leaves the others' sessions alone;
- rebalancing: 300 sessions on two members, a third added: each ends near 100, and the
  closes never outrun max_moves_per_second.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter

import websockets

import aiohelp
from weirlib import free_port, make_config, py_backend, to_yaml


def backends(peers, n: int, **ports):
    return [peers.py("headers", "--name", f"b{i + 1}", "--no-compression") for i in range(n)]


async def who(url: str, headers=None) -> tuple[str, dict]:
    """Connects, returns (backend name, response headers), closes."""
    async with aiohelp.connect(url, extra_headers=headers or {}) as ws:
        info = json.loads(await ws.recv())
        return info["name"], {k.lower(): v for k, v in ws.response_headers.raw_items()}


def names(url: str, n: int, headers=None) -> list[str]:
    async def run():
        return [(await who(url, headers))[0] for _ in range(n)]
    return aiohelp.run(run(), 60)


async def reconnecting(url: str, stop: asyncio.Event, landed, keep_cookie: bool = False) -> None:
    """A client that reconnects after every Close 1012 (as client libraries do), telling
    landed(backend name) each time; with keep_cookie, it sends back the cookie it was set."""
    cookie = None
    while not stop.is_set():
        async with aiohelp.connect(url, extra_headers={"Cookie": cookie} if cookie else {}) as ws:
            set_cookie = {k.lower(): v for k, v in ws.response_headers.raw_items()}.get("set-cookie")
            if keep_cookie and set_cookie:
                cookie = set_cookie.split(";")[0]
            landed(json.loads(await ws.recv())["name"])
            try:
                await ws.wait_closed()
            except Exception:
                pass
            if ws.close_code != 1012:
                return


def group_cfg(bs, **extra) -> dict:
    members = [b if isinstance(b, (dict, str)) else b.addr for b in bs]
    return {"name": "pool", "members": members, **extra}


def start(weir, groups, route_extra=None, **top):
    top.setdefault("workers", 1)  # one round-robin sequence: exact counts
    return weir.routes([{"name": "chat", "upstream_group": "pool", **(route_extra or {})}],
                       upstream_groups=groups, **top)


def member_state(w, upstream: str) -> dict:
    for g in w.admin_json("/admin/upstreams")["groups"]:
        for m in g["members"]:
            if m["upstream"] == upstream and g["group"] == "pool":
                return m
    raise AssertionError(f"{upstream} not in /admin/upstreams")


def wait_for(what, cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_weighted_round_robin_follows_the_weights(weir, peers):
    b = backends(peers, 3)
    members = [b[0].addr, b[1].addr, {"address": b[2].addr, "weight": 2}]
    w = start(weir, [group_cfg(members)])
    got = Counter(names(w.url(), 40))
    assert got == {"b1": 10, "b2": 10, "b3": 20}, got


def test_least_conn_spreads_live_sessions(weir, peers):
    b = backends(peers, 3)
    w = start(weir, [group_cfg(b, policy="least_conn")])

    async def run():
        conns = []
        for _ in range(30):
            ws = await aiohelp.connect(w.url()).__aenter__()
            conns.append((ws, json.loads(await ws.recv())["name"]))
        got = Counter(n for _, n in conns)
        for ws, _ in conns:
            await ws.close()
        return got
    got = aiohelp.run(run(), 60)
    assert got == {"b1": 10, "b2": 10, "b3": 10}, got


def test_hash_on_a_header_keeps_each_key_on_one_backend(weir, peers):
    b = backends(peers, 3)
    w = start(weir, [group_cfg(b, policy="hash", hash_key="header:X-Tenant")])
    seen = {}
    for t in range(12):
        got = set(names(w.url(), 3, {"X-Tenant": f"tenant-{t}"}))
        assert len(got) == 1, (t, got)
        seen[t] = got.pop()
    assert len(set(seen.values())) >= 2, seen  # 12 keys do not all hash to one of 3


def test_sticky_cookie_brings_a_client_back_and_forgeries_are_ignored(weir, peers):
    b = backends(peers, 3)
    key = "sticky-key-0123456789"
    w = start(weir, [group_cfg(b, sticky={"cookie": {"name": "srv", "key": key, "ttl": "1h"}})])

    async def run():
        first, hdrs = await who(w.url())
        cookie = hdrs["set-cookie"]
        assert cookie.startswith("srv=") and "HttpOnly" in cookie and "Max-Age=3600" in cookie, cookie
        value = cookie.split(";")[0]
        again = [await who(w.url(), {"Cookie": value}) for _ in range(6)]
        # Round robin alone would have sent them to all three.
        assert {n for n, _ in again} == {first}
        assert all("set-cookie" not in h for _, h in again)
        # A forged cookie (another signature) is ignored: a fresh pick and a new cookie.
        name, forged = value.split("=", 1)
        bad = forged.split(".")[0] + ".AAAAAAAAAAAAAAAAAAAAAA"
        _, h = await who(w.url(), {"Cookie": f"{name}={bad}"})
        assert h["set-cookie"].startswith("srv=")
    aiohelp.run(run(), 60)
    m = w.metrics()
    assert m['weir_upstream_sticky_total{group="pool",result="hit"}'] == 6
    assert m['weir_upstream_sticky_total{group="pool",result="forged"}'] == 1
    assert m['weir_upstream_sticky_total{group="pool",result="new"}'] == 2


def test_a_dead_member_is_retried_past_and_then_ejected(weir, peers):
    b = backends(peers, 2)
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    w = start(weir, [group_cfg([dead, b[0].addr, b[1].addr], retries=1,
                               outlier_detection={"consecutive_failures": 2, "base_ejection": "30s"})])
    got = Counter(names(w.url(), 12))
    assert set(got) == {"b1", "b2"} and sum(got.values()) == 12, got  # no client saw the dead one
    ev = w.log.wait("upstream.eject", timeout=5)[0]
    assert ev["upstream"] == dead and ev["group"] == "pool"
    assert member_state(w, dead)["ejected"] is True
    m = w.metrics()
    assert m[f'weir_upstream_retries_total{{group="pool",upstream="{dead}"}}'] == 2
    assert m[f'weir_upstream_ejections_total{{group="pool",upstream="{dead}"}}'] == 1
    assert m[f'weir_upstream_member_available{{group="pool",upstream="{dead}"}}'] == 0


def test_active_checks_take_a_killed_backend_out_and_bring_it_back(weir, peers):
    b = backends(peers, 2)
    port2 = b[1].port
    w = start(weir, [group_cfg(b, health_check={"type": "websocket", "interval": "200ms", "timeout": "1s",
                                                "rise": 2, "fall": 2})])
    assert Counter(names(w.url(), 4)) == {"b1": 2, "b2": 2}
    b[1].kill()
    ev = w.log.wait("upstream.health", timeout=5, healthy=False)[0]
    assert ev["upstream"] == f"127.0.0.1:{port2}"
    st = member_state(w, f"127.0.0.1:{port2}")
    assert st["healthy"] is False and st["last_check_error"]
    assert Counter(names(w.url(), 10)) == {"b1": 10}  # new clients never see it
    revived = py_backend("headers", "--name", "b2", "--no-compression", "--port", str(port2))
    peers.peers.append(revived)
    w.log.wait("upstream.health", timeout=5, healthy=True)
    assert "b2" in set(names(w.url(), 6))


def test_live_sessions_dropped_by_a_backend_eject_it(weir, peers):
    """Passive health from the data path: a backend that dies under live sessions (no
    Close) fails them, each a failure in a row: ejected before any new client tries it."""
    b = backends(peers, 2)
    dead = b[0].addr
    w = start(weir, [group_cfg(b, retries=0, outlier_detection={"consecutive_failures": 3})])

    async def run():
        conns = []
        for _ in range(6):  # round robin: 3 on each
            ws = await aiohelp.connect(w.url()).__aenter__()
            conns.append((json.loads(await ws.recv())["name"], ws))
        b[0].kill()
        for name, ws in conns:
            if name != "b1":
                continue
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except websockets.ConnectionClosed:
                pass
            assert ws.close_code == 1011  # the client learns, and reconnects
        ev = w.log.wait("upstream.eject", timeout=5)[0]
        assert ev["upstream"] == dead
        assert member_state(w, dead)["ejected"] is True
        # retries: 0, so a new client sent to the dead member would fail: none does.
        assert [(await who(w.url()))[0] for _ in range(6)] == ["b2"] * 6
        for name, ws in conns:
            if name == "b2":
                await ws.send("still here")
                assert await ws.recv() == "still here"
                await ws.close()
    aiohelp.run(run(), 60)
    m = w.metrics()
    assert m[f'weir_upstream_ejections_total{{group="pool",upstream="{dead}"}}'] == 1
    assert m.get(f'weir_upstream_retries_total{{group="pool",upstream="{dead}"}}', 0) == 0


def test_drain_from_the_admin_api_ends_in_1012(weir, peers):
    b = backends(peers, 2)
    w = start(weir, [group_cfg(b)])

    async def run():
        a = await aiohelp.connect(w.url()).__aenter__()
        c = await aiohelp.connect(w.url()).__aenter__()
        on = {json.loads(await a.recv())["name"]: a, json.loads(await c.recv())["name"]: c}
        status, _, body = w.admin(f"/admin/upstreams/pool/{b[0].addr}/drain", method="POST",
                                  body=b'{"timeout": "1s"}')
        assert status == 200, body
        assert member_state(w, b[0].addr)["draining"] is True
        for _ in range(4):  # new sessions avoid it
            assert (await who(w.url()))[0] == "b2"
        t0 = time.monotonic()
        try:
            await asyncio.wait_for(on["b1"].recv(), 5)
        except websockets.ConnectionClosed:
            pass
        assert on["b1"].close_code == 1012
        assert 0.7 < time.monotonic() - t0 < 3
        await on["b2"].send("still here")
        assert await on["b2"].recv() == "still here"  # the other member's session is untouched
        await on["b2"].close()
        status, _, _ = w.admin(f"/admin/upstreams/pool/{b[0].addr}/undrain", method="POST")
        assert status == 200
        assert "b1" in {(await who(w.url()))[0] for _ in range(4)}
    aiohelp.run(run(), 60)
    status, _, _ = w.admin("/admin/upstreams/pool/127.0.0.1:1/drain", method="POST")
    assert status == 404


def test_no_available_member_is_503_with_retry_after_and_not_ready(weir, peers):
    b = backends(peers, 1)
    w = start(weir, [group_cfg(b, health_check={"type": "http", "path": "/healthz", "interval": "200ms",
                                                "rise": 1, "fall": 1})])
    assert names(w.url(), 1) == ["b1"]
    status, _, _ = w.admin("/readyz")
    assert status == 200
    b[0].kill()
    w.log.wait("upstream.health", timeout=5, healthy=False)
    from weirlib import build_request, http_exchange, new_key
    r = http_exchange(w.port, build_request("/", key=new_key()))
    assert r.status == 503 and r.header("retry-after") == "1", (r.status, r.body)
    assert b"no healthy upstream in group pool" in r.body
    status, _, body = w.admin("/readyz")
    assert status == 503 and b"upstream group pool: no available member" in body, body


def test_a_reload_that_removes_a_member_leaves_the_others_alone(weir, peers):
    b = backends(peers, 2)
    w = start(weir, [group_cfg(b)])

    async def run():
        a = await aiohelp.connect(w.url()).__aenter__()
        c = await aiohelp.connect(w.url()).__aenter__()
        on = {json.loads(await a.recv())["name"]: a, json.loads(await c.recv())["name"]: c}
        cfg = make_config([{"name": "chat", "upstream_group": "pool"}], upstream_groups=[group_cfg([b[1]])])
        w.config_path.write_text(to_yaml(cfg) + "\n")
        os.kill(w.pid, signal.SIGHUP)
        w.log.wait("config.reload", timeout=5)
        for _ in range(3):
            assert (await who(w.url()))[0] == "b2"
        await on["b2"].send("x")
        assert await on["b2"].recv() == "x"
        await on["b2"].close()
        await on["b1"].close()
    aiohelp.run(run(), 60)


def test_rebalancing_spreads_sessions_onto_a_new_member_within_the_rate(weir, peers):
    b = backends(peers, 3)
    rate = 40
    rebalance = {"max_ratio": 1.05, "max_moves_per_second": rate, "min_age": "0s", "interval": "250ms"}
    cfg = lambda members: make_config([{"name": "chat", "upstream_group": "pool"}],  # noqa: E731
                                      upstream_groups=[group_cfg(members, policy="least_conn",
                                                                 rebalance=rebalance)])
    w = weir.start(cfg(b[:2]))
    n = 300
    where: dict[int, str] = {}
    stop = asyncio.Event()

    async def client(i: int):
        await reconnecting(w.url(), stop, lambda name: where.__setitem__(i, name))

    async def run():
        tasks = [asyncio.create_task(client(i)) for i in range(n)]
        deadline = time.monotonic() + 30
        while len(where) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert Counter(where.values()) == {"b1": 150, "b2": 150}
        w.config_path.write_text(to_yaml(cfg(b)) + "\n")
        os.kill(w.pid, signal.SIGHUP)
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            c = Counter(where.values())
            if all(90 <= c.get(k, 0) <= 110 for k in ("b1", "b2", "b3")) and sum(c.values()) == n:
                break
            await asyncio.sleep(0.2)
        got = Counter(where.values())
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return got
    got = aiohelp.run(run(), 100)
    assert all(90 <= got.get(k, 0) <= 110 for k in ("b1", "b2", "b3")), got
    closes = [e for e in w.log.find("upstream.close") if e.get("reason", "").startswith("rebalancing")]
    assert closes, "no session was moved"
    # Never more than the rate in any one-second window (plus one tick of tokens).
    stamps = sorted(time.mktime(time.strptime(e["ts"][:19], "%Y-%m-%dT%H:%M:%S")) + float("0." + e["ts"][20:26])
                    for e in closes)
    worst = max(sum(1 for t in stamps if s <= t < s + 1.0) for s in stamps)
    assert worst <= rate + rate // 4 + 1, worst
    m = w.metrics()
    moved = sum(v for k, v in m.items() if k.startswith("weir_upstream_rebalanced_total"))
    assert moved == len(closes)


def test_rebalancing_moves_sticky_sessions_only_where_the_route_allows(weir, peers):
    b = backends(peers, 2)
    rebalance = {"max_ratio": 1.2, "max_moves_per_second": 50, "min_age": "0s", "interval": "200ms"}
    group = group_cfg(b, sticky={"cookie": {"name": "srv", "key": "sticky-key-0123456789"}}, rebalance=rebalance)
    w = weir.start(make_config([{"name": "pinned", "match": {"path": "/pinned"}, "upstream_group": "pool"},
                                {"name": "free", "match": {"path": "/free"}, "upstream_group": "pool",
                                 "rebalance_sticky": True}], workers=1, upstream_groups=[group]))
    assert w.admin(f"/admin/upstreams/pool/{b[1].addr}/drain", method="POST")[0] == 200
    where: dict[tuple[str, int], str] = {}
    closed: Counter = Counter()
    stop = asyncio.Event()

    async def client(path: str, i: int):
        def moved(name):
            if (path, i) in where:
                closed[path] += 1
            where[(path, i)] = name
        await reconnecting(w.url(path), stop, moved, keep_cookie=True)

    async def run():
        tasks = [asyncio.create_task(client(p, i)) for p in ("/pinned", "/free") for i in range(10)]
        while len(where) < 20:
            await asyncio.sleep(0.05)
        assert set(where.values()) == {"b1"}
        assert w.admin(f"/admin/upstreams/pool/{b[1].addr}/undrain", method="POST")[0] == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            free = Counter(v for (p, _), v in where.items() if p == "/free")
            if free.get("b2", 0) >= 8:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # more rebalancing rounds: the pinned ones must still stay
        got = dict(where)
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return got
    got = aiohelp.run(run(), 60)
    pinned = Counter(v for (p, _), v in got.items() if p == "/pinned")
    free = Counter(v for (p, _), v in got.items() if p == "/free")
    assert pinned == {"b1": 10} and closed["/pinned"] == 0  # never moved: their cookie pins them
    assert free.get("b2", 0) >= 8, free  # moved, and their cookie yielded to the policy
    assert closed["/free"] >= 8
    m = w.metrics()
    assert m['weir_upstream_sticky_total{group="pool",result="moved"}'] >= 8

