#!/usr/bin/python3
"""A Python `websockets` (10.4, legacy API) echo backend for the pre-warmed pool tests,
steered through files in --control DIR:

  DIR/gate   while it exists, upgrade requests are held (not answered)
  DIR/kill   when it appears: every connection that has not received a message yet (an idle
             pooled one) is killed, alternately with a TCP abort and with a Close 1001 frame
             (nothing after it); the file is then removed, and "killed" reported once the
             sockets are closed and the frames sent

Prints JSON lines on stdout:
  {"event": "listening", "port": N}                         once, first
  {"event": "held", "path", "user_agent"}                   an upgrade request met the gate
  {"event": "handshake", "n": k, "path", "user_agent", "x_test"}   an upgrade request answered
  {"event": "killed", "n": k}                               after a kill
--delay-ms: every upgrade is answered that much later (a slow backend).
"""

import argparse
import asyncio
import json
import os
import sys

import websockets


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--control", required=True)
    ap.add_argument("--delay-ms", type=int, default=0)
    args = ap.parse_args()
    gate = os.path.join(args.control, "gate")
    kill = os.path.join(args.control, "kill")
    answered = {"n": 0}
    live = {}  # ws -> messages received

    async def process_request(path, headers):
        ua = headers.get("User-Agent", "")
        if os.path.exists(gate):
            emit(event="held", path=path, user_agent=ua)
            while os.path.exists(gate):
                await asyncio.sleep(0.005)
        if args.delay_ms:
            await asyncio.sleep(args.delay_ms / 1000)
        answered["n"] += 1
        emit(event="handshake", n=answered["n"], path=path, user_agent=ua, x_test=headers.get("X-Test", ""))
        return None

    async def handler(ws):
        live[ws] = 0
        try:
            async for msg in ws:
                live[ws] += 1
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            live.pop(ws, None)

    async def killer():
        while True:
            await asyncio.sleep(0.02)
            if not os.path.exists(kill):
                continue
            idle = [ws for ws, n in live.items() if n == 0]
            reason = b"killed by the test"
            close_frame = bytes([0x88, 2 + len(reason)]) + (1001).to_bytes(2, "big") + reason
            for i, ws in enumerate(idle):
                if i % 2 == 0:
                    ws.transport.abort()
                else:
                    # The Close frame itself, at once (ws.close() would wait for the answer).
                    ws.transport.write(close_frame)
            os.remove(kill)
            # The aborted sockets close on the loop's next turn: report once they have.
            await asyncio.sleep(0.1)
            emit(event="killed", n=len(idle))

    async def run():
        server = await websockets.serve(handler, "127.0.0.1", 0, ping_interval=None, compression=None,
                                        process_request=process_request)
        emit(event="listening", port=server.sockets[0].getsockname()[1])
        await killer()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
