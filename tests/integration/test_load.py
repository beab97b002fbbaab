"""6. 200 concurrent clients, each echoing 1000 messages of random size (1..2000 bytes)
through Weir to a Python websockets backend, every byte checked."""

import asyncio
import random
import time

from aiohelp import connect, run

CLIENTS = 200
MESSAGES = 1000
WINDOW = 32  # messages in flight per client


async def _client(url: str, cid: int, stats: dict) -> None:
    async with connect(url, open_timeout=30) as ws:
        sent_rng = random.Random(cid)
        check_rng = random.Random(cid)
        window = asyncio.Semaphore(WINDOW)

        async def sender():
            for i in range(MESSAGES):
                await window.acquire()
                data = sent_rng.randbytes(sent_rng.randint(1, 2000))
                await ws.send(data if i % 2 else data.hex()[: len(data)])

        async def receiver():
            for i in range(MESSAGES):
                got = await ws.recv()
                data = check_rng.randbytes(check_rng.randint(1, 2000))
                want = data if i % 2 else data.hex()[: len(data)]
                if got != want:
                    raise AssertionError(f"client {cid} message {i}: wrong echo "
                                         f"({len(got)} bytes, wanted {len(want)})")
                window.release()
                stats["msgs"] += 1
                stats["bytes"] += len(want)

        await asyncio.gather(sender(), receiver())


def test_200_clients_1000_messages_each(weir, peers):
    py = peers.py("echo", "--no-compression")
    w = weir.routes([{"name": "load", "upstreams": [py.addr]}])
    stats = {"msgs": 0, "bytes": 0}

    async def go():
        url = w.url("/load")
        await asyncio.gather(*(_client(url, cid, stats) for cid in range(CLIENTS)))

    t0 = time.monotonic()
    run(go(), timeout=150)
    elapsed = time.monotonic() - t0
    assert stats["msgs"] == CLIENTS * MESSAGES
    closes = w.log.wait("conn.close", count=CLIENTS, timeout=15)
    assert len(closes) == CLIENTS
    assert all(c["msgs_in"] == MESSAGES and c["msgs_out"] == MESSAGES for c in closes), \
        [c for c in closes if c["msgs_in"] != MESSAGES or c["msgs_out"] != MESSAGES][:3]
    assert all(c["closed_by"] == "client" and c["close_code"] == 1000 for c in closes)
    assert len({c["id"] for c in closes}) == CLIENTS, "session ids must be unique"
    print(f"{CLIENTS}x{MESSAGES} messages, {stats['bytes'] / 1e6:.1f} MB echoed in {elapsed:.1f}s")
