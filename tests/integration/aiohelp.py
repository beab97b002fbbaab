"""asyncio helpers for tests written as plain (sync) pytest functions."""

from __future__ import annotations

import asyncio

import websockets


def run(coro, timeout: float = 30.0):
    """Run a coroutine to completion in a fresh event loop, bounded by `timeout`."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


def connect(url: str, **kw):
    """websockets.connect with test defaults: no size limit, no compression, no pings."""
    kw.setdefault("max_size", None)
    kw.setdefault("compression", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 10)
    kw.setdefault("close_timeout", 5)
    return websockets.connect(url, **kw)
