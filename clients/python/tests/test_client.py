"""The Python client against a real tickcastd over loopback."""

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Daemon, ROOT
from tickcast_client import (Book, BookUpdate, Client, Cleared, Disconnected, Gap, Reconnected,
                             Snapshot, Status, TickcastError, Update, book_checksum)

HERE = Path(__file__).resolve().parents[1]


async def until(client, kind, topic=None, timeout=10.0):
    """The next event of this kind (for this topic), skipping others."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        ev = await client.next_event(timeout=max(left, 0.01))
        if isinstance(ev, kind) and (topic is None or ev.topic == topic):
            return ev


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_snapshot_then_updates_merge_into_values(daemon, fmt):
    daemon.publish("PY.A", bid=1.5)

    async def go():
        async with Client(daemon.ws, format=fmt) as c:
            ack = await c.subscribe(["PY.*"])
            assert ack["topics"] == ["PY.*"]
            snap = await until(c, Snapshot, "PY.A")
            assert (snap.seq, snap.fields) == (1, {"bid": 1.5}) and len(snap.epoch) == 8
            daemon.publish("PY.A", ask=1.75)
            up = await until(c, Update, "PY.A")
            assert (up.seq, up.fields) == (2, {"ask": 1.75})
            assert c.values["PY.A"] == {"bid": 1.5, "ask": 1.75}
            assert c.topics["PY.A"].seq == 2
            with pytest.raises(TickcastError) as e:
                await c.subscribe(["bad topic"])
            assert e.value.code == "bad_topic"
            assert await c.list_topics("PY.") == ["PY.A"]
            assert await c.ping() > 1_700_000_000 * 10**9
    run(go())


def test_status_and_clear_events(daemon):
    daemon.publish("PY.S", bid=1.0)

    async def go():
        async with Client(daemon.ws) as c:
            await c.subscribe(["PY.S"], max_rate=50)
            # tickcast pub's connection ends after each call, so the topic it
            # published is stale until its next update.
            snap = await until(c, Snapshot, "PY.S")
            if not snap.stale:
                # Subscribed before the server had taken in the publisher's
                # departure: the stale mark follows as a status event.
                assert (await until(c, Status, "PY.S")).stale
            assert c.topics["PY.S"].stale
            daemon.publish("PY.S", bid=2.0)
            # Events in order (the client's state may already be ahead of them).
            assert not (await until(c, Status, "PY.S")).stale
            assert (await until(c, Update, "PY.S")).seq == 2
            assert (await until(c, Status, "PY.S")).stale
            assert c.topics["PY.S"].stale
            subprocess.run([os.environ.get("TICKCAST", str(ROOT / "target/debug/tickcast")), "pub",
                            daemon.publish_url, "--token", "python-client-token", "--clear", "PY.S"],
                           check=True, capture_output=True)
            await until(c, Cleared, "PY.S")
            assert "PY.S" not in c.values
            daemon.publish("PY.S", last=3.0)
            up = await until(c, Update, "PY.S")
            assert up.seq == 1 and up.epoch and c.values["PY.S"] == {"last": 3.0}
    run(go())


def test_reconnects_after_the_daemon_restarts_and_sees_the_new_epoch():
    d = Daemon()
    port = d.port

    async def go():
        nonlocal d
        d.publish("PY.R", bid=1.0)
        async with Client(d.ws, min_backoff=0.05, max_backoff=0.5) as c:
            await c.subscribe(["PY.*"])
            first = await until(c, Snapshot, "PY.R")
            d.stop()
            await until(c, Disconnected)
            d = Daemon(port)
            await until(c, Reconnected)
            d.publish("PY.R", ask=9.0)
            up = await until(c, Update, "PY.R")
            # A new process: seq restarts at 1 in a new epoch, and the old
            # value is gone rather than mixed with the new one.
            assert up.seq == 1 and up.epoch and up.epoch != first.epoch
            assert c.values["PY.R"] == {"ask": 9.0}
    try:
        run(go())
    finally:
        d.stop()


async def _dropping_proxy(upstream_port: int, drop_seq: int):
    """A TCP proxy that drops, once, the server's update frame with seq
    `drop_seq`: a real gap on the client's wire."""
    dropped = False

    async def pipe_up(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def pipe_down(reader, writer):
        nonlocal dropped
        buf = b""
        head_done = False
        try:
            while data := await reader.read(65536):
                buf += data
                if not head_done:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    writer.write(buf[:end + 4])
                    buf, head_done = buf[end + 4:], True
                while len(buf) >= 2:
                    n, hdr = buf[1] & 0x7F, 2
                    if n == 126:
                        if len(buf) < 4:
                            break
                        n, hdr = int.from_bytes(buf[2:4], "big"), 4
                    elif n == 127:
                        if len(buf) < 10:
                            break
                        n, hdr = int.from_bytes(buf[2:10], "big"), 10
                    if len(buf) < hdr + n:
                        break
                    frame, buf = buf[:hdr + n], buf[hdr + n:]
                    payload = frame[hdr:]
                    # A batch (one event per line) is dropped whole when it holds the update.
                    hit = any(line.startswith(b'{"event":"update"') and
                              f'"seq":{drop_seq},'.encode() in line for line in payload.split(b"\n"))
                    if not dropped and hit:
                        dropped = True
                        continue
                    writer.write(frame)
                await writer.drain()
        finally:
            writer.close()

    async def handle(client_reader, client_writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(pipe_up(client_reader, up_writer), pipe_down(up_reader, client_writer),
                             return_exceptions=True)

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_a_gap_is_detected_and_recovered_from_history(daemon):
    daemon.publish("PY.G", bid=1.0)

    async def go():
        proxy = await _dropping_proxy(daemon.port, drop_seq=3)
        port = proxy.sockets[0].getsockname()[1]
        async with Client(f"ws://127.0.0.1:{port}/ws", min_backoff=0.05) as c:
            await c.subscribe(["PY.G"])
            await until(c, Snapshot, "PY.G")
            for i in range(2, 6):
                daemon.publish("PY.G", bid=float(i))
            gap = await until(c, Gap, "PY.G")
            assert (gap.expected, gap.got) == (3, 4)
            back = await until(c, Reconnected)
            assert back.recovered == ["PY.G"], "resumed from history, no snapshot"
            while c.topics["PY.G"].seq < 5:
                await until(c, Update, "PY.G")
            assert c.values["PY.G"] == {"bid": 5.0}
        proxy.close()
    run(go())


def test_live_view_command(daemon):
    daemon.publish("PY.V", bid=2.0)
    env = dict(os.environ, PYTHONPATH=str(HERE))
    out = subprocess.run([sys.executable, "-m", "tickcast_client", daemon.ws, "PY.*", "--json", "--for", "1.5"],
                         capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    # Stale: the one-shot publisher (tickcast pub) has left.
    assert {"type": "Snapshot", "topic": "PY.V", "seq": 1, "stale": True} == \
        {k: events[0][k] for k in ("type", "topic", "seq", "stale")}, events
    # As on the wire, "conflated" appears only when an event stands for several.
    assert all("conflated" not in e or e["conflated"] > 1 for e in events), events
    table = subprocess.run([sys.executable, "-m", "tickcast_client", daemon.ws, "PY.*", "--for", "1"],
                           capture_output=True, text=True, timeout=30, env=env)
    assert "PY.V" in table.stdout and "2.0" in table.stdout, table.stdout
    # Not a terminal: plain lines, no screen codes.
    assert "\x1b" not in table.stdout, repr(table.stdout)


def test_live_view_piped_into_head_stops_quietly(daemon):
    for i in range(5):
        daemon.publish(f"PY.H{i}", bid=1.0 + i)
    env = dict(os.environ, PYTHONPATH=str(HERE))
    out = subprocess.run(f"'{sys.executable}' -m tickcast_client {daemon.ws} 'PY.*' --json --for 10 | head -n 2",
                         shell=True, capture_output=True, text=True, timeout=30, env=env)
    assert len(out.stdout.splitlines()) == 2, out.stdout
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr


def test_book_checksum_is_the_documented_crc32():
    asks = [(64001.0, 0.7), (64002.5, 2.0)]
    assert book_checksum([(64000.5, 1.2), (64000.0, 3.0)], asks) == 936822193
    assert book_checksum([(64000.0, 3.0), (63990.0, 4.0)], asks) == 3127965468


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_order_books_at_a_depth_with_every_checksum_verified(fmt):
    d = Daemon(args=("--demo", "--demo-rate", "400"))
    try:
        async def go():
            async with Client(d.ws, format=fmt) as c:
                # The demo's first round may not have reached the book yet:
                # subscribed before it has a value, the first thing to come
                # would be its first change, not the book.
                for _ in range(200):
                    if "ETH-USD.book" in await c.list_topics("ETH-USD"):
                        break
                    await asyncio.sleep(0.05)
                await c.subscribe(["ETH-USD.book"], depth=10)
                updates = 0
                book = None
                while updates < 5:
                    ev = await c.next_event(timeout=10)
                    # A checksum that did not match the copy would be a Gap.
                    assert not isinstance(ev, Gap), ev
                    if isinstance(ev, BookUpdate):
                        assert book is not None, "the book comes first"
                        assert [p for p, _ in ev.bids] == sorted((p for p, _ in ev.bids), reverse=True)
                        updates += 1
                    elif isinstance(ev, Book):
                        book = ev
                        assert book.depth == 10
                        assert len(book.bids) == 10 and len(book.asks) == 10, "cut to the depth"
                        assert book.bids[0][0] < book.asks[0][0]
                # Events are applied as they arrive and queued: let what is
                # in flight arrive, then drain without awaiting (a timed-out
                # next_event awaits its cancellation, and the reader may apply
                # more meanwhile), so the last event read is the book's state.
                while True:
                    try:
                        more = await c.next_event(timeout=0.05)
                    except asyncio.TimeoutError:
                        more = c.next_event_nowait()
                        if more is None:
                            break
                    assert not isinstance(more, Gap), more
                    if isinstance(more, (Book, BookUpdate)):
                        ev = more
                assert c.book("ETH-USD.book").asks == ev.asks
        run(go())
    finally:
        d.stop()
