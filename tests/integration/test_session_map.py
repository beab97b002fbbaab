"""sticky.session_map: the member each client key's last session had, kept in a real
redis-server shared by two Weir instances, so a client that comes back through either
instance lands on the same backend; the entry lives while a session of the key lives
(refreshed past its ttl); a mapped member that is gone falls back to the policy and the
map follows (counted as moved)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

import aiohelp
from test_balancing import backends, group_cfg, who
from test_limits import wait_until
from weirlib import RedisServer, make_config


@pytest.fixture
def redis():
    r = RedisServer()
    yield r
    r.kill()


def instance(weir, redis, bs, name, ttl="30s"):
    group = group_cfg(bs, retries=1, sticky={"session_map": {"key": "header:X-Session-Id", "ttl": ttl}})
    w = weir.start(make_config([{"name": "chat", "upstream_group": "pool"}], workers=1, upstream_groups=[group],
                               state={"backend": "redis", "url": redis.url}), name=name)
    assert wait_until(lambda: w.metrics().get("weir_redis_up", -1) == 1, 10), "weir did not connect to redis"
    return w


def landed(w, sid: str) -> str:
    return aiohelp.run(who(w.url("/"), {"X-Session-Id": sid}), 30)[0]


def sticky(w, result: str) -> float:
    return w.metrics().get(f'weir_upstream_sticky_total{{group="pool",result="{result}"}}', 0)


def test_a_returning_client_lands_on_its_backend_through_either_instance(weir, peers, redis):
    bs = backends(peers, 3)
    a = instance(weir, redis, bs, "a")
    b = instance(weir, redis, bs, "b")
    ids = [f"s{i}" for i in range(6)]
    first = {sid: landed(a, sid) for sid in ids}
    assert sorted(first.values()) == ["b1", "b1", "b2", "b2", "b3", "b3"]  # round robin on a
    # Through b, in the other order (b's own round robin would put s5 on b1).
    again = {sid: landed(b, sid) for sid in reversed(ids)}
    assert again == first
    assert (sticky(a, "new"), sticky(b, "hit"), sticky(b, "new")) == (6, 6, 0)
    # Back through a as well; a client without the header takes the policy.
    assert {sid: landed(a, sid) for sid in ids} == first
    assert sticky(a, "hit") == 6


def test_the_entry_lives_while_its_session_does_then_follows_a_lost_member(weir, peers, redis):
    bs = backends(peers, 2)
    a = instance(weir, redis, bs, "a", ttl="1s")
    b = instance(weir, redis, bs, "b", ttl="1s")

    async def hold_then_return():
        async with aiohelp.connect(a.url("/"), extra_headers={"X-Session-Id": "long"}) as ws:
            home = json.loads(await ws.recv())["name"]
            await asyncio.sleep(2.5)  # past the ttl: refreshed while the session lives
            name, _ = await who(b.url("/"), {"X-Session-Id": "long"})
            return home, name

    home, name = aiohelp.run(hold_then_return(), 30)
    assert name == home
    assert sticky(b, "hit") == 1
    # Gone after the last session of the key, plus the ttl: the policy again, "new".
    time.sleep(1.6)
    landed(b, "long")
    assert sticky(b, "new") == 1

    # The mapped member dies: the policy picks the other, the client is counted as
    # moved, and the map follows it.
    home = landed(a, "k")
    dead = bs[int(home[1]) - 1]
    dead.kill()
    other = landed(b, "k")
    assert other != home
    assert sticky(b, "moved") == 1
    assert landed(a, "k") == other
