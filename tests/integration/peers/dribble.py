#!/usr/bin/python3
"""A WebSocket echo backend that writes every byte it sends as its own write, so over TLS
every byte is its own TLS record (and over plain TCP, with TCP_NODELAY, its own segment).

Usage: dribble.py [--cert PEM --key PEM]
Prints JSON lines on stdout:
  {"event": "listening", "port": N}         once, first
  {"event": "closed", "conn": i, "echoed": n, "error": text|null}
Listens on 127.0.0.1, port 0. One thread per connection (blocking sockets), so a write of
one byte is one send() and one SSL_write().

Each data message is echoed as two fragments with a ping of its own in between (the client
must see the message whole, in order, and the ping relayed); a ping is answered with a pong,
a Close with a Close. Every frame goes out one byte per write.
"""

import argparse
import base64
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_lock = threading.Lock()


def emit(**kw):
    with _lock:
        sys.stdout.write(json.dumps(kw) + "\n")
        sys.stdout.flush()


def frame(opcode, payload=b"", fin=True):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, 127, n)
    return hdr + payload


def dribble(sock, data):
    for i in range(len(data)):
        sock.sendall(data[i:i + 1])


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("peer closed")
            self.buf += chunk

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("peer closed during the handshake")
            self.buf += chunk
        end = self.buf.index(b"\r\n\r\n") + 4
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[:end]
        return head

    def frame(self):
        self.fill(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, pos = b1 & 0x7F, 2
        if n == 126:
            self.fill(4)
            n, pos = struct.unpack_from("!H", self.buf, 2)[0], 4
        elif n == 127:
            self.fill(10)
            n, pos = struct.unpack_from("!Q", self.buf, 2)[0], 10
        key = None
        if b1 & 0x80:
            self.fill(pos + 4)
            key = bytes(self.buf[pos:pos + 4])
            pos += 4
        self.fill(pos + n)
        payload = bytearray(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        if key:
            for i in range(n):
                payload[i] ^= key[i & 3]
        return bool(b0 & 0x80), b0 & 0x0F, bytes(payload)


def serve(conn, idx):
    echoed, error = 0, None
    try:
        r = Reader(conn)
        head = r.head()
        key = ""
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "sec-websocket-key":
                key = v.strip()
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
        dribble(conn, ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
        msg, op = b"", 0
        while True:
            fin, opcode, payload = r.frame()
            if opcode == 0x9:
                dribble(conn, frame(0xA, payload))
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x8:
                dribble(conn, frame(0x8, payload[:2]))
                break
            if opcode != 0:
                op, msg = opcode, payload
            else:
                msg += payload
            if not fin:
                continue
            half = len(msg) // 2
            dribble(conn, frame(op, msg[:half], fin=False))
            dribble(conn, frame(0x9, b"back-ping"))
            dribble(conn, frame(0x0, msg[half:]))
            echoed += 1
    except Exception as e:  # noqa: BLE001 - reported, the test decides
        error = f"{type(e).__name__}: {e}"
    finally:
        emit(event="closed", conn=idx, echoed=echoed, error=error)
        try:
            conn.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(512)
    emit(event="listening", port=ls.getsockname()[1])
    n = 0
    while True:
        raw, _ = ls.accept()
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        n += 1

        def run(raw=raw, idx=n):
            try:
                conn = ctx.wrap_socket(raw, server_side=True) if ctx else raw
            except (OSError, ssl.SSLError) as e:
                emit(event="closed", conn=idx, echoed=0, error=f"tls: {e}")
                raw.close()
                return
            serve(conn, idx)

        threading.Thread(target=run, daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
    os._exit(0)
