"""Upstream groups with resolve_interval: a member given by a DNS name becomes one member per
address of the name, re-resolved on the interval (as for a Kubernetes headless Service).
A real DNS server (a small UDP responder in this file, answering A records from a table the
test changes) is named by the top-level `resolver`; the backends are Python `websockets`
servers on 127.0.0.2 and 127.0.0.3 (loopback addresses) on one port."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from collections import Counter

import aiohelp
from test_balancing import names
from weirlib import free_port, make_config, py_backend


class Dns:
    """A UDP DNS server on 127.0.0.1 answering A queries for the names in `table` (AAAA: no
    answer; unknown names: NXDOMAIN). Counts queries per name."""

    def __init__(self) -> None:
        self.table: dict[str, list[str]] = {}
        self.queries: Counter = Counter()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(512)
            except OSError:
                return
            try:
                self.sock.sendto(self.answer(data), peer)
            except (OSError, IndexError, struct.error):
                pass

    def answer(self, q: bytes) -> bytes:
        qid, _flags = struct.unpack(">HH", q[:4])
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode())
            i += 1 + q[i]
        qtype, _qclass = struct.unpack(">HH", q[i + 1:i + 5])
        question = q[12:i + 5]
        name = ".".join(labels).lower()
        self.queries[name] += 1
        if name not in self.table:
            return struct.pack(">HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
        answers = [] if qtype != 1 else self.table[name]
        out = struct.pack(">HHHHHH", qid, 0x8180, 1, len(answers), 0, 0) + question
        for a in answers:
            out += struct.pack(">HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(a)
        return out

    def close(self) -> None:
        self.sock.close()


def wait_resolved(w, addresses: str, timeout=10.0) -> dict:
    return w.log.wait("upstream.resolve", timeout=timeout, name="pods.test", addresses=addresses)[-1]


def test_every_address_of_a_name_is_a_member_and_follows_the_dns_answer(weir, peers):
    dns = Dns()
    port = free_port()
    b1 = py_backend("headers", "--name", "b1", "--no-compression", "--host", "127.0.0.2", "--port", str(port))
    b2 = py_backend("headers", "--name", "b2", "--no-compression", "--host", "127.0.0.3", "--port", str(port))
    peers.peers += [b1, b2]
    dns.table["pods.test"] = ["127.0.0.2"]
    try:
        group = {"name": "pool", "members": [f"pods.test:{port}"], "resolve_interval": "200ms"}
        w = weir.start(make_config([{"name": "chat", "upstream_group": "pool"}], workers=1,
                                   upstream_groups=[group],
                                   resolver={"nameservers": [f"127.0.0.1:{dns.port}"], "timeout": "1s"}))
        wait_resolved(w, "127.0.0.2")
        w.log.wait("config.reload", timeout=5, cause="dns")  # every worker has the address member
        assert Counter(names(w.url(), 4)) == {"b1": 4}
        members = w.admin_json("/admin/upstreams")["groups"][0]["members"]
        assert [m["upstream"] for m in members] == [f"pods.test:{port}@127.0.0.2"]

        # A pod is added: both addresses become members (round robin: 2 and 2).
        mark = w.log.mark()
        dns.table["pods.test"] = ["127.0.0.3", "127.0.0.2"]
        ev = wait_resolved(w, "127.0.0.2,127.0.0.3")
        assert ev["before"] == 1
        reload = w.log.wait("config.reload", timeout=5, since=mark, cause="dns")[-1]  # every worker has it
        assert reload["changed"] == "chat"
        assert Counter(names(w.url(), 4)) == {"b1": 2, "b2": 2}

        async def who():
            async with aiohelp.connect(w.url()) as c:
                return json.loads(await c.recv())["name"]

        async def hold_and_drop():
            # A session on b1 outlives its address leaving the answer, like a member
            # removed by a reload: new sessions go to b2 only.
            ws = None
            for _ in range(4):
                ws = await aiohelp.connect(w.url()).__aenter__()
                if json.loads(await ws.recv())["name"] == "b1":
                    break
                await ws.close()
            mark = w.log.mark()
            dns.table["pods.test"] = ["127.0.0.3"]
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: w.log.wait("config.reload", timeout=5, since=mark, cause="dns"))
            assert [await who() for _ in range(4)] == ["b2"] * 4
            await ws.send("still here")
            assert await ws.recv() == "still here"
            await ws.close()

        aiohelp.run(hold_and_drop(), 30)

        # The server stops answering for the name: the last addresses are kept (logged once).
        del dns.table["pods.test"]
        ev = w.log.wait("upstream.resolve_failed", timeout=5, name="pods.test")[0]
        assert ev["kept"] == 1
        assert Counter(names(w.url(), 2)) == {"b2": 2}
    finally:
        dns.close()
