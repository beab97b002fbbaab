"""Revocations shared by Weir instances through a real redis-server (state: {backend: redis}):
POST /admin/revoke on one instance closes the matching sessions on the others within about
200 ms and they refuse the token too; an instance started later loads what is in force; a
revocation made while Redis is down is written when it is back; a Redis that restarted
empty learns the revocations again from the instances."""

from __future__ import annotations

import json
import time

import pytest

from test_authz import bearer, echo_once, status_of
from test_limits import wait_until
from weirlib import RawClient, RedisServer, make_config

SECRET = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def redis():
    r = RedisServer()
    yield r
    r.kill()


def instance(weir, peers, redis, name):
    rb = peers.raw("echo")
    route = {"name": "chat", "upstreams": [rb.addr], "jwt": {"keys": [{"secret": SECRET}]}}
    w = weir.start(make_config([route], state={"backend": "redis", "url": redis.url}), name=name)
    assert wait_until(lambda: w.metrics().get("weir_redis_up", -1) == 1, 10), "weir did not connect to redis"
    return w


def revoke(w, **body) -> dict:
    status, _, out = w.admin("/admin/revoke", method="POST", body=json.dumps(body).encode())
    assert status == 202, out
    return json.loads(out)


def refused(w, claims) -> bool:
    status, _, body = status_of(w.port, bearer(claims))
    return status == 401 and b"token revoked" in body


def test_a_revocation_on_one_instance_closes_and_refuses_on_the_others(weir, peers, redis):
    a = instance(weir, peers, redis, "a")
    b = instance(weir, peers, redis, "b")
    on_a = RawClient(a.port, "/", headers=bearer({"sub": "alice", "jti": "a0"}))
    on_b = RawClient(b.port, "/", headers=bearer({"sub": "alice", "jti": "a1"}))
    bob = RawClient(b.port, "/", headers=bearer({"sub": "bob", "jti": "b0"}))
    try:
        echo_once(on_b, b"before")
        t0 = time.monotonic()
        assert revoke(a, sub="alice", ttl="10m") == {"sub": "alice", "ttl_seconds": 600, "sessions_closed": 1,
                                                      "shared": True}
        assert on_a.expect_close(timeout=3).close_code == 1008
        f = on_b.expect_close(timeout=3)
        assert (f.close_code, f.close_reason) == (1008, "token revoked")
        assert time.monotonic() - t0 < 1.5  # polled every 200 ms
        ev = b.log.wait("revoke.shared", timeout=3)[0]
        assert (ev["sub"], ev["sessions_closed"]) == ("alice", 1) and 590 <= ev["ttl_seconds"] <= 600
        assert refused(b, {"sub": "alice", "jti": "a2"})
        echo_once(bob, b"bob is still here")
        listed = b.admin_json("/admin/revoke")["revocations"]
        assert [r["sub"] for r in listed] == ["alice"]
        assert not a.log.find("revoke.shared")  # its own, not news to it

        # By token id, from b this time: only bob's session on b, a hears of it.
        assert revoke(b, jti="b0")["sessions_closed"] == 1
        assert bob.expect_close(timeout=3).close_code == 1008
        assert wait_until(lambda: refused(a, {"sub": "bob", "jti": "b0"}), 3)
        assert status_of(a.port, bearer({"sub": "bob", "jti": "b1"}))[0] == 101

        # An instance that starts later loads what is in force.
        c = instance(weir, peers, redis, "c")
        assert wait_until(lambda: refused(c, {"sub": "alice"}), 3)
        assert refused(c, {"sub": "bob", "jti": "b0"})
        assert status_of(c.port, bearer({"sub": "carol"}))[0] == 101
    finally:
        for x in (on_a, on_b, bob):
            x.close()


def test_revoked_while_redis_is_down_is_shared_when_it_is_back(weir, peers, redis):
    a = instance(weir, peers, redis, "a")
    b = instance(weir, peers, redis, "b")
    assert revoke(a, sub="alice")["shared"] is True
    assert wait_until(lambda: refused(b, {"sub": "alice"}), 3)
    dave = RawClient(b.port, "/", headers=bearer({"sub": "dave"}))
    try:
        redis.kill()
        assert wait_until(lambda: a.metrics()["weir_redis_up"] == 0, 10)
        assert revoke(a, sub="dave")["sessions_closed"] == 0  # dave is on b
        echo_once(dave, b"b has not heard yet")
        assert not refused(b, {"sub": "dave", "jti": "d2"})

        redis.start()  # empty: the instances write back what they know
        f = dave.expect_close(timeout=10)
        assert (f.close_code, f.close_reason) == (1008, "token revoked")
        assert refused(b, {"sub": "dave", "jti": "d3"})
        # alice's revocation was only in the lost Redis and in the instances: a newcomer
        # learns it from what they wrote back.
        c = instance(weir, peers, redis, "c")
        assert wait_until(lambda: refused(c, {"sub": "alice"}) and refused(c, {"sub": "dave"}), 3)
    finally:
        dave.close()
