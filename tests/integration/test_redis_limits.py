"""Connection limits shared by two Weir instances through a real redis-server (state:
{backend: redis}): per-user concurrency and per-address connect rate hold across both;
Redis lost -> local limits, weir_redis_up 0 and /readyz detail say so (or 503 with
on_redis_down: refuse); Redis back -> shared limits resume; an instance killed with -9 ->
its slots expire with its lease and the user gets in through the other."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from test_limits import hs256, upgrade_from, wait_until
from weirlib import OP_TEXT, RawClient, RedisServer, make_config

ALICE = [("Authorization", "Bearer " + hs256({"sub": "alice"}))]


@pytest.fixture
def redis():
    r = RedisServer()
    yield r
    r.kill()


def shared(weir, peers, redis, name, limits, **state):
    rb = peers.raw("echo")
    route = {"name": "chat", "upstreams": [rb.addr], "jwt": {"keys": [{"secret": "0123456789abcdef0123456789abcdef"}]}}
    route.update(limits)
    w = weir.start(make_config([route], state={"backend": "redis", "url": redis.url, "lease_ttl": "3s", **state}),
                   name=name)
    assert wait_until(lambda: redis_up(w) == 1, 10), "weir did not connect to redis"
    return w


def redis_up(w) -> float:
    return w.metrics().get("weir_redis_up", -1)


def readyz(w) -> tuple[int, dict]:
    status, _, body = w.admin("/readyz")
    return status, json.loads(body)


def status(w, headers=ALICE) -> int:
    return upgrade_from("127.0.0.1", w.port, headers).status


def test_user_concurrency_holds_across_two_instances(weir, peers, redis):
    a = shared(weir, peers, redis, "a", {"user_limits": [{"concurrent": 3}]})
    b = shared(weir, peers, redis, "b", {"user_limits": [{"concurrent": 3}]})
    held = [RawClient(a.port, "/", headers=ALICE), RawClient(a.port, "/", headers=ALICE),
            RawClient(b.port, "/", headers=ALICE)]
    try:
        for w in (a, b):  # the 4th, on either instance
            r = upgrade_from("127.0.0.1", w.port, ALICE)
            assert r.status == 429 and b"too many concurrent connections (per user)" in r.body
            assert r.header("retry-after") == "1"
        bob = [("Authorization", "Bearer " + hs256({"sub": "bob"}))]
        assert status(b, bob) == 101
        held.pop(0).close()  # one on a closes: the next gets in on b
        assert wait_until(lambda: status(b) == 101)
        for c in held:
            c.send(OP_TEXT, b"x")
            assert c.recv_message() == (OP_TEXT, b"x")
        assert a.metrics()['weir_limit_hits_total{route="chat",limit="concurrent",per="user"}'] >= 1
    finally:
        for c in held:
            c.close()


def test_connect_rate_is_shared_across_two_instances(weir, peers, redis):
    rule = {"connection_limits": [{"per": "ip", "connections_per_second": 0.2, "burst": 3}]}
    a = shared(weir, peers, redis, "a", rule)
    b = shared(weir, peers, redis, "b", rule)
    assert [status(a), status(b), status(a)] == [101, 101, 101]  # the burst, spent on both
    for w in (b, a):
        r = upgrade_from("127.0.0.1", w.port, ALICE)
        assert r.status == 429 and b"connection rate exceeded (per ip)" in r.body
        assert 1 <= int(r.header("retry-after")) <= 5
    ev = b.log.wait("limit.hit", timeout=5)[0]
    assert (ev["limit"], ev["per"], ev["key"]) == ("connection_rate", "ip", "127.0.0.1")


def test_redis_lost_falls_back_to_local_then_shared_limits_resume(weir, peers, redis):
    w = shared(weir, peers, redis, "a", {"user_limits": [{"concurrent": 3}]})
    st, body = readyz(w)
    assert st == 200 and body["detail"]["redis"] == {"state": "up", "on_redis_down": "local", "limits": "shared"}
    cfg = w.admin_json("/admin/config")["state"]
    assert cfg == {"backend": "redis", "url": f"redis://127.0.0.1:{redis.port}/0", "password": None,
                   "on_redis_down": "local", "lease_ttl_seconds": 3, "key_prefix": "weir:"}
    held = [RawClient(w.port, "/", headers=ALICE) for _ in range(2)]  # 2 slots in Redis
    try:
        redis.kill()
        assert wait_until(lambda: redis_up(w) == 0, 10)
        st, body = readyz(w)
        assert st == 200 and body["detail"]["redis"] == {"state": "down", "on_redis_down": "local", "limits": "local"}
        # Nobody was dropped, and new handshakes go on, on this process's counters.
        for c in held:
            c.send(OP_TEXT, b"still here")
            assert c.recv_message() == (OP_TEXT, b"still here")
        local = [RawClient(w.port, "/", headers=ALICE) for _ in range(3)]
        held += local
        assert status(w) == 429  # the local limit (3 admitted while down)
        down = w.log.wait("redis.down", timeout=5)
        assert down[0]["on_redis_down"] == "local"
        redis.start()  # same port, empty: the instance writes its 2 Redis slots back
        assert wait_until(lambda: redis_up(w) == 1, 15)
        assert len(w.log.find("redis.down")) == 1  # once per streak, whatever the retries
        assert w.log.wait("redis.up", timeout=5)[-1]["slot_keys"] == 1
        st, body = readyz(w)
        assert st == 200 and body["detail"]["redis"]["limits"] == "shared"
        # Shared again: Redis counts the 2 it admitted, so one more passes, then 429.
        held.append(RawClient(w.port, "/", headers=ALICE))
        assert status(w) == 429
    finally:
        for c in held:
            c.close()


def test_redis_down_with_refuse_answers_503_and_is_not_ready(weir, peers, redis):
    w = shared(weir, peers, redis, "a", {"user_limits": [{"concurrent": 3}]}, on_redis_down="refuse")
    c = RawClient(w.port, "/", headers=ALICE)
    try:
        redis.kill()
        assert wait_until(lambda: redis_up(w) == 0, 10)
        r = upgrade_from("127.0.0.1", w.port, ALICE)
        assert r.status == 503 and b"shared limits unavailable" in r.body
        st, body = readyz(w)
        assert st == 503 and body["detail"]["redis"]["limits"] == "refusing"
        assert any("redis down" in s for s in body["reasons"])
        c.send(OP_TEXT, b"x")  # an open session is not dropped
        assert c.recv_message() == (OP_TEXT, b"x")
        redis.start()
        assert wait_until(lambda: status(w) == 101, 15)
        assert readyz(w)[0] == 200
    finally:
        c.close()


def test_killed_instance_slots_expire_with_its_lease(weir, peers, redis):
    a = shared(weir, peers, redis, "a", {"user_limits": [{"concurrent": 3}]})
    b = shared(weir, peers, redis, "b", {"user_limits": [{"concurrent": 3}]})
    held = [RawClient(a.port, "/", headers=ALICE) for _ in range(3)]
    assert status(b) == 429
    os.kill(a.pid, signal.SIGKILL)
    a.proc.wait(timeout=5)
    a.returncode = -9
    for c in held:
        c.close()
    assert status(b) == 429  # a's lease (3s, renewed every 1s) has not run out yet
    assert wait_until(lambda: status(b) == 101, 8)


def echoed(c, timeout=0.5) -> int:
    n = 0
    while True:
        try:
            c.recv_message(timeout=timeout)
        except (AssertionError, TimeoutError, OSError):
            return n
        n += 1


def test_per_user_message_rate_is_shared_across_two_instances(weir, peers, redis):
    rule = {"message_rate": {"messages_per_second": 5, "burst_messages": 10, "action": "drop", "per": "user"}}
    a = shared(weir, peers, redis, "a", rule)
    b = shared(weir, peers, redis, "b", rule)
    ca, cb = RawClient(a.port, "/", headers=ALICE), RawClient(b.port, "/", headers=ALICE)
    try:
        for c in (ca, cb):  # the first message also fetches each instance's first batch
            c.send(OP_TEXT, b"hello")
            assert c.recv_message() == (OP_TEXT, b"hello")
        time.sleep(0.3)
        # 20 messages from each side in 0.4 s: alone, each instance would pass its own
        # burst and more (about 12); together they share one bucket of 10 + 5/s.
        for i in range(20):
            ca.send(OP_TEXT, b"a%d" % i)
            cb.send(OP_TEXT, b"b%d" % i)
            time.sleep(0.02)
        total = echoed(ca) + echoed(cb)
        assert 8 <= total <= 16, total  # 13 when measured; 22 unshared
        dropped = sum(v for k, v in a.metrics().items() if k.startswith("weir_message_rate_exceeded_total")) + \
            sum(v for k, v in b.metrics().items() if k.startswith("weir_message_rate_exceeded_total"))
        assert dropped == 40 - total
    finally:
        ca.close()
        cb.close()


def test_password_from_the_environment_and_a_wrong_one(weir, peers):
    r = RedisServer(password="s3cret-redis-pw")
    try:
        rb = peers.raw("echo")
        route = {"name": "chat", "upstreams": [rb.addr], "connection_limits": [{"per": "global", "concurrent": 1}]}
        state = {"backend": "redis", "url": r.url, "password": "${WEIR_TEST_REDIS_PW}"}
        good = weir.start(make_config([route], state=state), name="good", env={"WEIR_TEST_REDIS_PW": "s3cret-redis-pw"})
        bad = weir.start(make_config([route], state=state), name="bad", env={"WEIR_TEST_REDIS_PW": "wrong"})
        assert wait_until(lambda: redis_up(good) == 1, 10)
        err = bad.log.wait("redis.error", timeout=10)[0]
        assert err["command"] == "AUTH" and "WRONGPASS" in err["error"]
        assert redis_up(bad) == 0 and bad.log.wait("redis.down", timeout=5)
        time.sleep(1)  # several reconnects (100, 200, 400 ms): logged once
        assert len(bad.log.find("redis.error")) == 1 and len(bad.log.find("redis.down")) == 1
        assert readyz(bad)[1]["detail"]["redis"]["limits"] == "local"
        c = RawClient(good.port, "/")
        try:
            assert status(good, []) == 429  # the global slot is taken, in Redis
            assert status(bad, []) == 101   # bad counts alone
        finally:
            c.close()
    finally:
        r.kill()


def test_a_hung_redis_counts_as_down_after_a_second(weir, peers, redis):
    w = shared(weir, peers, redis, "a", {"user_limits": [{"concurrent": 3}]})
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        assert status(w) == 101  # answered from the local counters once the reply is overdue
        assert time.monotonic() - t0 < 3
        assert redis_up(w) == 0
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    assert wait_until(lambda: redis_up(w) == 1, 15)
