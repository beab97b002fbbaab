#!/usr/bin/python3
"""A wss:// echo backend (Python websockets 10.4 over TLS) for Weir's upstream TLS tests.

Usage: tlsback.py --cert PEM --key PEM [--client-ca PEM]
Prints JSON lines on stdout:
  {"event": "listening", "port": N}                         once, first
  {"event": "open", "conn": i, "sni": name|null, "client_cert": "CN=..,O=.."|null,
   "tls": version, "session_reused": bool, "headers": [...]}
  {"event": "closed", "conn": i, "code": c, "received": n}
With --client-ca the backend requires a client certificate signed by that CA.
Listens on 127.0.0.1, port 0.
"""

import argparse
import asyncio
import json
import ssl
import sys

import websockets


def emit(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca")
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    snis = {}

    def on_sni(sslobj, name, _ctx):
        snis[id(sslobj)] = name
        return None

    ctx.sni_callback = on_sni
    counter = {"n": 0}

    async def handler(ws):
        counter["n"] += 1
        conn = counter["n"]
        sslobj = ws.transport.get_extra_info("ssl_object")
        peer = ws.transport.get_extra_info("peercert")
        subject = None
        if peer:
            short = {"commonName": "CN", "organizationName": "O"}
            subject = ",".join(f"{short.get(k, k)}={v}" for rdn in peer.get("subject", ())
                               for k, v in rdn)
        emit(event="open", conn=conn, path=ws.path, sni=snis.get(id(sslobj)) if sslobj else None,
             client_cert=subject, tls=sslobj.version() if sslobj else None,
             session_reused=sslobj.session_reused if sslobj else None,
             headers=[[k, v] for k, v in ws.request_headers.raw_items()])
        received = 0
        try:
            async for msg in ws:
                received += 1
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            emit(event="closed", conn=conn, code=ws.close_code, received=received)

    async def run():
        server = await websockets.serve(handler, "127.0.0.1", 0, ssl=ctx, max_size=None,
                                        ping_interval=None, compression=None)
        emit(event="listening", port=server.sockets[0].getsockname()[1])
        await asyncio.Future()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
