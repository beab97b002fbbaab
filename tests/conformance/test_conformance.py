"""RFC 6455 conformance through Weir, judged against a strict reference backend.

Every case is played three ways:
  direct  straight to the reference backend (Python websockets, max_size=None, no
          compression); its verdict must be the RFC's (sanity check of the case itself);
  plain   through Weir, default route: the verdict must equal the direct one;
  strict  through Weir, `strict: true` route: the verdict must equal the direct one, and for
          invalid UTF-8 in a text message Weir itself must be the one closing with 1007
          (its log has a protocol_error line with close_code 1007 for that session).
In default mode an invalid-UTF-8 verdict must come from the backend (no protocol_error line).
"""

from __future__ import annotations

import time
from typing import Callable

import pytest

from rawcase import Case, Verdict, expect, f, run_case
from weirlib import (MiB, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawClient,
                     close_payload)

# --------------------------------------------------------------------------- payloads

_TEXT_UNIT = b"The quick brown fox jumps over the lazy dog 0123456789. "
_BIN_UNIT = bytes(range(256))


def text(n: int) -> bytes:
    return (_TEXT_UNIT * (n // len(_TEXT_UNIT) + 1))[:n]


def binary(n: int) -> bytes:
    return (_BIN_UNIT * (n // 256 + 1))[:n]


CASES: list[Case] = []


def case(group, name, chunks, expected, **kw):
    CASES.append(Case(group, name, chunks, expected, **kw))


def one(*frames: bytes) -> Callable:
    """All frames in one TCP write."""
    return lambda: [b"".join(frames)]


def each(*frames: bytes) -> Callable:
    """One TCP write per frame."""
    return lambda: list(frames)


# --------------------------------------------------------------------------- framing

for size in (0, 125, 126, 127, 65535, 65536, 16 * MiB):
    label = "16MiB" if size == 16 * MiB else str(size)
    to = 30.0 if size > MiB else 5.0
    case("framing", f"text-{label}", (lambda s=size: [f(OP_TEXT, text(s))]),
         (lambda s=size: expect([(OP_TEXT, text(s))])), timeout=to)
    case("framing", f"binary-{label}", (lambda s=size: [f(OP_BINARY, binary(s))]),
         (lambda s=size: expect([(OP_BINARY, binary(s))])), timeout=to)

# Header split at every byte boundary: 6-byte (7-bit length), 8-byte (16-bit) and 14-byte
# (64-bit length) headers, masked.
for size, hlen in ((5, 6), (200, 8), (70000, 14)):
    for k in range(1, hlen):
        def chunks(size=size, k=k):
            fr = f(OP_BINARY, binary(size))
            return [fr[:k], fr[k:]]
        case("framing", f"split-{hlen}B-header-after-{k}", chunks,
             (lambda size=size: expect([(OP_BINARY, binary(size))])), gap=0.01)

# Split inside the payload, and two frames split across their boundary.
case("framing", "split-mid-payload",
     lambda: (lambda fr: [fr[:100], fr[100:1000], fr[1000:]])(f(OP_TEXT, text(5000))),
     lambda: expect([(OP_TEXT, text(5000))]), gap=0.01)
case("framing", "split-across-two-frames",
     lambda: (lambda fr: [fr[:len(fr) - 3], fr[len(fr) - 3:]])(f(OP_TEXT, b"first") + f(OP_TEXT, b"second")),
     lambda: expect([(OP_TEXT, b"first"), (OP_TEXT, b"second")]), gap=0.01)


def _bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


case("framing", "byte-by-byte-small-frames",
     lambda: _bytewise(f(OP_TEXT, b"Hello") + f(OP_BINARY, b"\x00\xff\x10") + f(OP_PING, b"pp")),
     lambda: expect([(OP_TEXT, b"Hello"), (OP_BINARY, b"\x00\xff\x10")], pongs=[b"pp"]), gap=0.002)
case("framing", "byte-by-byte-16bit-length-header",
     lambda: (lambda fr: _bytewise(fr[:16]) + [fr[16:]])(f(OP_TEXT, text(300))),
     lambda: expect([(OP_TEXT, text(300))]), gap=0.002)
case("framing", "byte-by-byte-64bit-length-header",
     lambda: (lambda fr: _bytewise(fr[:20]) + [fr[20:]])(f(OP_BINARY, binary(70000))),
     lambda: expect([(OP_BINARY, binary(70000))]), gap=0.002)

_MANY = [(OP_TEXT if i % 3 else OP_BINARY, (text if i % 3 else binary)((i * 37) % 300)) for i in range(500)]
case("framing", "500-frames-in-one-segment", one(*[f(op, p) for op, p in _MANY]),
     lambda: expect(_MANY), timeout=10)
case("framing", "fragments-and-pings-in-one-segment",
     one(f(OP_TEXT, b"a", fin=False), f(OP_PING, b"1"), f(OP_CONT, b"b", fin=False),
         f(OP_CONT, b"c"), f(OP_BINARY, b"\x01"), f(OP_PING, b"2")),
     lambda: expect([(OP_TEXT, b"abc"), (OP_BINARY, b"\x01")], pongs=[b"1", b"2"]))
case("framing", "masking-key-zero",
     one(f(OP_TEXT, b"zero key", mask_key=b"\x00\x00\x00\x00")),
     lambda: expect([(OP_TEXT, b"zero key")]))

# --------------------------------------------------------------------------- pings

case("pings", "ping-empty", one(f(OP_PING)), lambda: expect(pongs=[b""]))
case("pings", "ping-with-payload", one(f(OP_PING, b"hello ping")), lambda: expect(pongs=[b"hello ping"]))
case("pings", "ping-125-bytes", one(f(OP_PING, binary(125))), lambda: expect(pongs=[binary(125)]))
case("pings", "ping-126-bytes", one(f(OP_PING, binary(126))), lambda: expect(close=1002))
case("pings", "pong-126-bytes", one(f(OP_PONG, binary(126))), lambda: expect(close=1002))
case("pings", "unsolicited-pong-ignored", one(f(OP_PONG, b"nobody asked"), f(OP_TEXT, b"after")),
     lambda: expect([(OP_TEXT, b"after")]))
case("pings", "unsolicited-empty-pong-ignored", each(f(OP_PONG), f(OP_TEXT, b"after")),
     lambda: expect([(OP_TEXT, b"after")]), gap=0.01)
case("pings", "ping-inside-fragmented-message",
     each(f(OP_TEXT, b"frag1-", fin=False), f(OP_PING, b"mid"), f(OP_CONT, b"frag2")),
     lambda: expect([(OP_TEXT, b"frag1-frag2")], pongs=[b"mid"]), gap=0.02)
case("pings", "pong-inside-fragmented-message",
     one(f(OP_BINARY, b"\x01", fin=False), f(OP_PONG, b"x"), f(OP_CONT, b"\x02")),
     lambda: expect([(OP_BINARY, b"\x01\x02")]))
case("pings", "ten-pings-in-a-row", one(*[f(OP_PING, str(i).encode()) for i in range(10)]),
     lambda: expect(pongs=[str(i).encode() for i in range(10)]))

# --------------------------------------------------------------------------- reserved bits / opcodes

for bit, rsv in (("RSV1", 4), ("RSV2", 2), ("RSV3", 1)):
    case("reserved", f"{bit}-text", one(f(OP_TEXT, b"rsv", rsv=rsv)), lambda: expect(close=1002))
    case("reserved", f"{bit}-ping", one(f(OP_PING, b"rsv", rsv=rsv)), lambda: expect(close=1002))
case("reserved", "RSV2-continuation", one(f(OP_TEXT, b"a", fin=False), f(OP_CONT, b"b", rsv=2)),
     lambda: expect(close=1002))
for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
    case("reserved", f"opcode-{op:X}", one(f(op, b"" if op >= 8 else b"payload")), lambda: expect(close=1002))
case("reserved", "opcode-B-after-valid-fragment",
     one(f(OP_TEXT, b"a", fin=False), f(0xB, b"")), lambda: expect(close=1002))

# --------------------------------------------------------------------------- fragmentation

case("fragmentation", "text-two-fragments", one(f(OP_TEXT, b"Hello, ", fin=False), f(OP_CONT, b"world")),
     lambda: expect([(OP_TEXT, b"Hello, world")]))
case("fragmentation", "binary-three-fragments-separate-segments",
     each(f(OP_BINARY, b"\x00" * 10, fin=False), f(OP_CONT, b"\x01" * 10, fin=False), f(OP_CONT, b"\x02" * 10)),
     lambda: expect([(OP_BINARY, b"\x00" * 10 + b"\x01" * 10 + b"\x02" * 10)]), gap=0.01)
case("fragmentation", "empty-fragments",
     one(f(OP_TEXT, b"", fin=False), f(OP_CONT, b"", fin=False), f(OP_CONT, b"x", fin=False), f(OP_CONT, b"")),
     lambda: expect([(OP_TEXT, b"x")]))
case("fragmentation", "1000-one-byte-fragments",
     one(f(OP_TEXT, b"a", fin=False), *[f(OP_CONT, b"b", fin=False) for _ in range(998)], f(OP_CONT, b"c")),
     lambda: expect([(OP_TEXT, b"a" + b"b" * 998 + b"c")]))
case("fragmentation", "large-fragments",
     one(f(OP_BINARY, binary(70000), fin=False), f(OP_CONT, binary(70000))),
     lambda: expect([(OP_BINARY, binary(70000) * 2)]))
case("fragmentation", "messages-around-fragmented",
     one(f(OP_TEXT, b"one"), f(OP_TEXT, b"t", fin=False), f(OP_CONT, b"wo"), f(OP_BINARY, b"3")),
     lambda: expect([(OP_TEXT, b"one"), (OP_TEXT, b"two"), (OP_BINARY, b"3")]))
case("fragmentation", "continuation-without-start", one(f(OP_CONT, b"orphan")), lambda: expect(close=1002))
case("fragmentation", "continuation-nofin-without-start", one(f(OP_CONT, b"orphan", fin=False)),
     lambda: expect(close=1002))
case("fragmentation", "continuation-after-complete-message",
     each(f(OP_TEXT, b"done"), f(OP_CONT, b"late")),
     lambda: expect([(OP_TEXT, b"done")], close=1002), gap=0.1)
case("fragmentation", "text-inside-fragmented-text", one(f(OP_TEXT, b"a", fin=False), f(OP_TEXT, b"b")),
     lambda: expect(close=1002))
case("fragmentation", "binary-inside-fragmented-text",
     one(f(OP_TEXT, b"a", fin=False), f(OP_BINARY, b"b", fin=False), f(OP_CONT, b"c")),
     lambda: expect(close=1002))
case("fragmentation", "fragmented-ping", one(f(OP_PING, b"p", fin=False), f(OP_CONT, b"q")),
     lambda: expect(close=1002))
case("fragmentation", "fragmented-pong", one(f(OP_PONG, b"p", fin=False), f(OP_CONT, b"q")),
     lambda: expect(close=1002))
case("fragmentation", "fragmented-close", one(f(OP_CLOSE, close_payload(1000), fin=False)),
     lambda: expect(close=1002))
case("fragmentation", "close-inside-fragmented-message",
     one(f(OP_TEXT, b"unfinished", fin=False), f(OP_CLOSE, close_payload(1000))),
     lambda: expect(close=1000), send_close=False)

# --------------------------------------------------------------------------- UTF-8
# Byte sequences from Autobahn's section 6.

VALID_UTF8 = [
    ("hello-umlauts", "Hello-µ@ßöäüàá-UTF-8!!".encode()),
    ("kosme", b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
    ("first-4byte-U+10000", b"\xf0\x90\x80\x80"),
    ("last-U+10FFFF", b"\xf4\x8f\xbf\xbf"),
    ("U+FFFF", b"\xef\xbf\xbf"),
    ("U+D7FF", b"\xed\x9f\xbf"),
    ("U+E000", b"\xee\x80\x80"),
    ("U+007F-U+0080-U+07FF-U+0800", b"\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80"),
]
INVALID_UTF8 = [
    ("kosme-then-surrogate", b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"),
    ("overlong-slash-2", b"\xc0\xaf"),
    ("overlong-slash-3", b"\xe0\x80\xaf"),
    ("overlong-slash-4", b"\xf0\x80\x80\xaf"),
    ("overlong-max-2", b"\xc1\xbf"),
    ("overlong-max-3", b"\xe0\x9f\xbf"),
    ("overlong-max-4", b"\xf0\x8f\xbf\xbf"),
    ("overlong-nul", b"\xc0\x80"),
    ("surrogate-D800", b"\xed\xa0\x80"),
    ("surrogate-DFFF", b"\xed\xbf\xbf"),
    ("surrogate-pair", b"\xed\xa0\x80\xed\xb0\x80"),
    ("above-U+10FFFF", b"\xf4\x90\x80\x80"),
    ("f7-max-4byte", b"\xf7\xbf\xbf\xbf"),
    ("5-byte-sequence", b"\xf8\x88\x80\x80\x80"),
    ("6-byte-sequence", b"\xfc\x84\x80\x80\x80\x80"),
    ("byte-fe", b"\xfe"),
    ("byte-ff", b"\xff"),
    ("lone-continuation-80", b"abc\x80"),
    ("lone-continuation-bf", b"\xbf"),
    ("missing-continuation-inside", b"\xe2\x82 \xac"),
    ("truncated-2-at-end", b"abc\xce"),
    ("truncated-3-at-end", b"abc\xe2\x82"),
    ("truncated-4-at-end", b"abc\xf0\x9f\x98"),
]

for name, data in VALID_UTF8:
    case("utf8", f"valid-{name}", one(f(OP_TEXT, data)), (lambda d=data: expect([(OP_TEXT, d)])))
for name, data in INVALID_UTF8:
    case("utf8", f"invalid-{name}", one(f(OP_TEXT, data)), lambda: expect(close=1007), utf8_invalid=True)
    case("utf8", f"binary-not-checked-{name}", one(f(OP_BINARY, data)),
         (lambda d=data: expect([(OP_BINARY, d)])))

_HELLO = "Hello-µ@ßöäüàá-UTF-8!!".encode()
case("utf8", "valid-fragmented-every-byte",
     one(f(OP_TEXT, _HELLO[:1], fin=False), *[f(OP_CONT, _HELLO[i:i + 1], fin=False) for i in range(1, len(_HELLO) - 1)],
         f(OP_CONT, _HELLO[-1:])),
     lambda: expect([(OP_TEXT, _HELLO)]))
case("utf8", "valid-codepoint-split-across-fragments-and-segments",
     each(f(OP_TEXT, b"\xf0\x90", fin=False), f(OP_CONT, b"\x80", fin=False), f(OP_CONT, b"\x80\xce\xba")),
     lambda: expect([(OP_TEXT, b"\xf0\x90\x80\x80\xce\xba")]), gap=0.01)
case("utf8", "valid-large-multibyte",
     one(f(OP_TEXT, "κόσμε€𐍈".encode() * 20000)),
     lambda: expect([(OP_TEXT, "κόσμε€𐍈".encode() * 20000)]))
case("utf8", "invalid-in-continuation",
     one(f(OP_TEXT, b"hello ", fin=False), f(OP_CONT, b"wor\xffld")),
     lambda: expect(close=1007), utf8_invalid=True)
case("utf8", "invalid-in-first-fragment",
     one(f(OP_TEXT, b"\xc0\xaf", fin=False), f(OP_CONT, b"fine")),
     lambda: expect(close=1007), utf8_invalid=True)
case("utf8", "invalid-split-across-fragments",
     one(f(OP_TEXT, b"ab\xed", fin=False), f(OP_CONT, b"\xa0\x80cd")),
     lambda: expect(close=1007), utf8_invalid=True)
case("utf8", "truncated-at-end-of-fragmented-message",
     one(f(OP_TEXT, b"ab", fin=False), f(OP_CONT, b"\xe2\x82")),
     lambda: expect(close=1007), utf8_invalid=True)
case("utf8", "truncated-then-empty-final-fragment",
     one(f(OP_TEXT, b"ab\xf0\x9f", fin=False), f(OP_CONT, b"\x98", fin=False), f(OP_CONT, b"")),
     lambda: expect(close=1007), utf8_invalid=True)
case("utf8", "fail-fast-invalid-first-fragment-separate-segments",
     each(f(OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80", fin=False),
          f(OP_CONT, b"edited", fin=False), f(OP_CONT, b"")),
     lambda: expect(close=1007), utf8_invalid=True, gap=0.05)
case("utf8", "valid-message-then-invalid",
     each(f(OP_TEXT, b"ok"), f(OP_TEXT, b"\xed\xa0\x80")),
     lambda: expect([(OP_TEXT, b"ok")], close=1007), utf8_invalid=True, gap=0.1)
case("utf8", "invalid-in-large-message",
     one(f(OP_TEXT, text(100000) + b"\xff" + text(1000))),
     lambda: expect(close=1007), utf8_invalid=True)

# --------------------------------------------------------------------------- close


def _close_case(name, payload, exp, **kw):
    case("close", name, one(f(OP_CLOSE, payload)), lambda: exp, send_close=False, **kw)


_close_case("empty", b"", expect(close="empty"))
_close_case("code-only-1000", close_payload(1000), expect(close=1000))
_close_case("code-and-reason", close_payload(1000, "bye now"), expect(close=1000))
_close_case("reason-123-bytes", close_payload(1000, "r" * 123), expect(close=1000))
_close_case("reason-utf8", close_payload(1000, "κόσμε"), expect(close=1000))
for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999):
    _close_case(f"valid-code-{code}", close_payload(code, "fine"), expect(close=code))
for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
    _close_case(f"invalid-code-{code}", close_payload(code), expect(close=1002))
_close_case("reason-invalid-utf8", close_payload(1000) + b"\xff\xfe", expect(close=1007))
_close_case("reason-surrogate", close_payload(1000) + b"ok\xed\xa0\x80", expect(close=1007))
_close_case("payload-1-byte", b"\x03", expect(close=1002))
_close_case("payload-126-bytes", close_payload(1000, "r" * 124), expect(close=1002))
case("close", "data-after-close-ignored", one(f(OP_CLOSE, close_payload(1000)), f(OP_TEXT, b"late")),
     lambda: expect(close=1000), send_close=False)
case("close", "close-after-messages", each(f(OP_TEXT, b"m1"), f(OP_BINARY, b"m2"), f(OP_CLOSE, close_payload(1001))),
     lambda: expect([(OP_TEXT, b"m1"), (OP_BINARY, b"m2")], close=1001), send_close=False, gap=0.05)

# --------------------------------------------------------------------------- masking

case("masking", "unmasked-text", one(f(OP_TEXT, b"naked", mask=False)), lambda: expect(close=1002))
case("masking", "unmasked-ping", one(f(OP_PING, b"naked", mask=False)), lambda: expect(close=1002))
case("masking", "unmasked-continuation", one(f(OP_TEXT, b"a", fin=False), f(OP_CONT, b"b", mask=False)),
     lambda: expect(close=1002))
case("masking", "unmasked-close", one(f(OP_CLOSE, close_payload(1000), mask=False)),
     lambda: expect(close=1002), send_close=False)

# --------------------------------------------------------------------------- the tests

_direct_cache: dict[str, Verdict] = {}


def _direct(backend, c: Case) -> Verdict:
    if c.id not in _direct_cache:
        _direct_cache[c.id] = run_case(backend.port, "/", c)[0]
    return _direct_cache[c.id]


# direct: the reference itself; plain/strict: ws:// through Weir to it; wss: TLS client leg
# (each chunk its own TLS record) to the same route; wss-upstream: ws:// client, Weir speaks
# TLS to the same reference server over TLS; inspect: ws:// through the inspecting pump.
MODES = ("direct", "plain", "strict", "inspect", "wss", "wss-upstream")
# The one valid case whose message the inspect route rewrites by design: it holds DEL and
# U+0080, control characters its sanitize filter drops (tests/integration checks that).
REWRITTEN_BY_INSPECT = {"utf8-valid-U+007F-U+0080-U+07FF-U+0800"}
PARAMS = [pytest.param(c, m, id=f"{c.id}[{m}]", marks=pytest.mark.group(c.group)) for c in CASES for m in MODES
          if not (m == "inspect" and c.id in REWRITTEN_BY_INSPECT)]


def _session_id(w, since: int, local_port: int):
    opens = w.log.wait("conn.open", since=since, timeout=3,
                       pred=lambda e: str(e.get("client", "")).endswith(f":{local_port}"))
    return opens[0]["id"]


@pytest.mark.parametrize("c,mode", PARAMS)
def test_case(c: Case, mode: str, backend, proxy, client_tls):
    if mode == "direct":
        got = _direct(backend, c)
        want = c.expected()
        assert got == want, (f"reference backend (direct) disagrees with the RFC verdict:\n"
                             f"  direct:   {got.brief()}\n  expected: {want.brief()}\n{got}\n{want}")
        return
    direct = _direct(backend, c)
    mark = proxy.log.mark()
    path = {"strict": "/strict", "wss-upstream": "/wss-upstream", "inspect": "/inspect"}.get(mode, "/")
    if mode == "wss":
        got, local_port = run_case(proxy.ports[1], path, c, tls=client_tls)
    else:
        got, local_port = run_case(proxy.port, path, c)
    assert got == direct, (f"verdict through Weir ({mode}) differs from direct:\n"
                           f"  weir:   {got.brief()}\n  direct: {direct.brief()}\n{got}\n{direct}")
    if c.utf8_invalid and direct.close == 1007:
        sid = _session_id(proxy, mark, local_port)
        if mode == "strict":
            ev = proxy.log.wait("protocol.error", since=mark, timeout=3, pred=lambda e: e.get("id") == sid)[0]
            assert ev["close_code"] == 1007, ev
            assert ev["side"] == "client", ev
        else:
            proxy.log.wait("conn.close", since=mark, timeout=3, pred=lambda e: e.get("id") == sid)
            pe = [e for e in proxy.log.find("protocol.error", since=mark) if e.get("id") == sid]
            assert not pe, f"default mode: Weir closed for invalid UTF-8 itself instead of the backend: {pe}"


@pytest.mark.group("masking")
def test_masked_server_frame_client_gets_1002(weir, peers):
    """A backend that masks its frames breaks RFC 6455 5.1: the client must get 1002
    (no direct comparison: the reference backend never does this)."""
    rb = peers.raw("record", on_open=lambda conn: conn.send(OP_TEXT, b"masked by server", mask=True))
    w = weir.routes([{"upstreams": [rb.addr]}])
    c = RawClient(w.port, "/")
    try:
        fr = c.expect_close(timeout=3)
        assert fr.mask_key is None
        assert fr.close_code == 1002, (fr.close_code, fr.close_reason)
    finally:
        c.close()
    pe = w.log.wait("protocol.error", timeout=3)[0]
    assert pe["side"] == "upstream" and pe["close_code"] == 1002, pe


@pytest.mark.group("masking")
def test_masked_server_frame_after_valid_traffic(weir, peers):
    def on_open(conn):
        conn.send(OP_TEXT, b"fine")
        time.sleep(0.2)
        conn.send(OP_BINARY, b"\x01\x02", mask=True)

    rb = peers.raw("record", on_open=on_open)
    w = weir.routes([{"upstreams": [rb.addr]}])
    c = RawClient(w.port, "/")
    try:
        assert c.recv_message(timeout=3) == (OP_TEXT, b"fine")
        fr = c.expect_close(timeout=3)
        assert fr.close_code == 1002, (fr.close_code, fr.close_reason)
    finally:
        c.close()
