"""8. Backpressure: a client that does not read makes Weir stop reading from the
backend; Weir's memory stays bounded, and nothing is lost once the client reads."""

import time

from weirlib import (MiB, OP_BINARY, OP_CLOSE, RawClient, close_payload, encode_frame,
                     flood_payload)

COUNT = 200
SIZE = 1 * MiB


def test_slow_reader_bounded_memory_and_no_loss(weir, peers):
    py = peers.py("flood", "--count", str(COUNT), "--size", str(SIZE), "--no-compression")
    w = weir.routes([{"upstreams": [py.addr]}], limits={"buffer_bytes": "64KiB"})
    time.sleep(0.2)
    baseline = w.rss_kib()

    c = RawClient(w.port, "/")  # never reads until told
    try:
        peak = baseline
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:
            peak = max(peak, w.rss_kib())
            time.sleep(0.05)
        sent_while_stalled = len(py.log.find("sent"))
        print(f"stalled client: backend sent {sent_while_stalled} MiB, "
              f"weir RSS +{(peak - baseline) / 1024:.1f} MiB")
        assert peak - baseline < 64 * 1024, \
            f"weir RSS grew {(peak - baseline) / 1024:.1f} MiB while the client was not reading"
        assert sent_while_stalled < COUNT * 3 // 4, \
            f"backend sent {sent_while_stalled}/{COUNT} MiB to a client that read nothing: " \
            "Weir did not push back"

        t0 = time.monotonic()
        for i in range(COUNT):
            op, payload = c.recv_message(timeout=30)
            assert op == OP_BINARY
            assert len(payload) == SIZE, f"message {i}: {len(payload)} bytes"
            if payload != flood_payload(i, SIZE):
                idx = int.from_bytes(payload[:4], "big")
                raise AssertionError(f"message {i}: wrong content (carries index {idx})")
            peak = max(peak, w.rss_kib()) if i % 20 == 0 else peak
        assert time.monotonic() - t0 < 60
        assert peak - baseline < 64 * 1024, f"weir RSS grew {(peak - baseline) / 1024:.1f} MiB"
        c.send(OP_CLOSE, close_payload(1000))
        assert c.expect_close(timeout=5).close_code == 1000
    finally:
        c.close()
    cl = w.log.wait("conn.close", timeout=5)[0]
    assert cl["msgs_out"] == COUNT
    assert cl["bytes_out"] >= COUNT * SIZE


def test_slow_backend_bounded_memory(weir, peers):
    """The other direction: a backend that stops reading makes Weir stop reading from
    the client (the client's sends block), with bounded memory."""
    # A raw backend that answers the upgrade, then never reads.
    def on_open(conn):
        while not conn.owner.stopped:
            time.sleep(0.1)

    rb = peers.raw("record", on_open=on_open)
    w = weir.routes([{"upstreams": [rb.addr]}], limits={"buffer_bytes": "64KiB"})
    time.sleep(0.2)
    baseline = w.rss_kib()
    c = RawClient(w.port, "/")
    try:
        frame = encode_frame(OP_BINARY, b"\xab" * MiB)
        c.sock.setblocking(False)
        sent = 0
        peak = baseline
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end and sent < 200 * MiB:
            try:
                sent += c.sock.send(frame[sent % len(frame):])
            except (BlockingIOError, InterruptedError):
                time.sleep(0.01)
            peak = max(peak, w.rss_kib())
        print(f"stalled backend: client pushed {sent / MiB:.1f} MiB, "
              f"weir RSS +{(peak - baseline) / 1024:.1f} MiB")
        assert sent < 150 * MiB, f"client could push {sent / MiB:.0f} MiB into a stalled backend"
        assert peak - baseline < 64 * 1024, \
            f"weir RSS grew {(peak - baseline) / 1024:.1f} MiB with a stalled backend"
    finally:
        c.close()
