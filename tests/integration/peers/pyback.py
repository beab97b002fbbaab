#!/usr/bin/python3
"""Python `websockets` (10.4, legacy API) backends for Weir's integration tests.

Usage: pyback.py MODE [options]; prints JSON lines on stdout:
  {"event": "listening", "port": N}               once, first
  {"event": "open", "conn": i, "path", "headers", "subprotocol", "extensions"}
  {"event": "closed", "conn": i, "code", "reason", "received"}   when a connection ends
  {"event": "sent", "conn": i, "n": k}             (flood) after each message
  {"event": "message", "conn": i, "text": str}     (--record) each text message received
  {"event": "message", "conn": i, "binary": hex}   (--record) each binary message received

Modes:
  echo      every message comes back (text as text, binary as binary)
  headers   first sends a JSON text message describing the request, then echoes
  close     after the first message, closes with --code/--reason
  refuse    answers the upgrade with HTTP --status (default 403)
  flood     sends --count messages of --size bytes (flood_payload pattern), then echoes
Options: --name (in `headers` mode's first message), --port (default 0: any), --record
(report every message received, before echoing it), and GET
/healthz without an Upgrade answers 200 (for HTTP health checks).
"""

import argparse
import asyncio
import http
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import websockets  # noqa: E402

from weirlib import flood_payload  # noqa: E402


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["echo", "headers", "close", "refuse", "flood"])
    ap.add_argument("--name", default="")
    ap.add_argument("--subprotocols", default="")
    ap.add_argument("--code", type=int, default=1000)
    ap.add_argument("--reason", default="")
    ap.add_argument("--status", type=int, default=403)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--no-compression", action="store_true")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")  # another loopback address (127.0.0.2, ...)
    args = ap.parse_args()

    counter = {"n": 0}

    def info(ws, conn):
        return {
            "conn": conn,
            "name": args.name,
            "path": ws.path,
            "headers": [[k, v] for k, v in ws.request_headers.raw_items()],
            "subprotocol": ws.subprotocol,
            "extensions": [e.name for e in ws.extensions],
        }

    async def handler(ws):
        counter["n"] += 1
        conn = counter["n"]
        emit(event="open", **info(ws, conn))
        received = 0
        try:
            if args.mode == "headers":
                await ws.send(json.dumps(info(ws, conn)))
            if args.mode == "close":
                await ws.recv()
                received += 1
                await ws.close(args.code, args.reason)
            if args.mode == "flood":
                for i in range(args.count):
                    await ws.send(flood_payload(i, args.size))
                    emit(event="sent", conn=conn, n=i + 1)
            async for msg in ws:
                received += 1
                if args.record:
                    if isinstance(msg, str):
                        emit(event="message", conn=conn, text=msg)
                    else:
                        emit(event="message", conn=conn, binary=msg.hex())
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            try:
                await asyncio.wait_for(ws.wait_closed(), 15)
            except asyncio.TimeoutError:
                pass
            emit(event="closed", conn=conn, code=ws.close_code, reason=ws.close_reason,
                 received=received)

    async def process_request(path, headers):
        # A plain GET of /healthz (an HTTP health check) is answered here.
        if path == "/healthz" and "upgrade" not in headers.get("Connection", "").lower():
            return (http.HTTPStatus.OK, [("Content-Type", "text/plain")], b"ok\n")
        if args.mode == "refuse":
            return (http.HTTPStatus(args.status), [("Content-Type", "text/plain")],
                    b"refused by the test backend\n")
        return None

    async def run():
        subprotocols = [p for p in args.subprotocols.split(",") if p] or None
        server = await websockets.serve(
            handler, args.host, args.port, max_size=None, ping_interval=None,
            subprotocols=subprotocols, process_request=process_request,
            compression=None if args.no_compression else "deflate")
        port = server.sockets[0].getsockname()[1]
        emit(event="listening", port=port)
        await asyncio.Future()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
