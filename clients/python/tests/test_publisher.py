"""The Python publisher against a real tickcastd: prices, books, trades,
clears, extra fields by name, refusals at the call and from the server,
interest events, both kinds of back-pressure, a reconnect with an honest
loss count, and the CSV replay example."""

import asyncio
import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, TOKEN, Daemon
from tickcast_client import Client, InvalidUpdate, Publisher, QueueFull, Refused

HERE = Path(__file__).resolve().parents[1]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def values_of(ws: str, topics, want) -> Client:
    """A client subscribed to ``topics`` once ``want(client)`` holds."""
    c = Client(ws)
    await c.connect()
    await c.subscribe(topics)
    for _ in range(400):
        if want(c):
            return c
        try:
            await c.next_event(timeout=0.05)
        except asyncio.TimeoutError:
            pass
    await c.close()
    raise AssertionError(f"never held: {c.values}")


def test_prices_books_trades_clears_and_extra_fields_arrive(daemon_extra):
    d = daemon_extra

    async def go():
        async with Publisher(d.publish_url, TOKEN) as p:
            assert p.fields == ("iv",), "the server's extra fields, from Tickcast-Fields"
            await p.publish("PP.A", bid=1.5, ask=1.6, iv=0.25)
            await p.publish("PP.A", last=1.55)
            await p.levels("PP.book", bids=[(10.0, 1.0), (9.5, 2.0)], asks=[(10.5, 3.0)], replace=True)
            await p.levels("PP.book", bids=[(10.0, 0.0)])
            await p.trade("PP.trades", price=10.2, size=5)
            await p.publish("PP.GONE", bid=1.0)
            await p.clear("PP.GONE")
            await p.flush()
            assert p.acknowledged == p.queued == 7 and p.lost == 0
        c = await values_of(d.ws, ["PP.A", "PP.trades"],
                            lambda c: c.values.get("PP.A", {}).get("last") == 1.55 and "PP.trades" in c.values)
        assert c.values["PP.A"] == {"bid": 1.5, "ask": 1.6, "iv": 0.25, "last": 1.55}
        assert c.values["PP.trades"]["last"] == 10.2
        await c.subscribe(["PP.book"], depth=10)
        for _ in range(100):
            if c.book("PP.book"):
                break
            try:
                await c.next_event(timeout=0.05)
            except asyncio.TimeoutError:
                pass
        book = c.book("PP.book")
        assert list(book.bids) == [(9.5, 2.0)] and list(book.asks) == [(10.5, 3.0)], book
        topics = await c.list_topics("PP.")
        assert "PP.GONE" not in topics, "cleared"
        await c.close()
    run(go())


def test_bad_updates_are_refused_at_the_call(daemon_extra):
    async def go():
        async with Publisher(daemon_extra.publish_url, TOKEN) as p:
            for bad in (lambda: p.publish("PP.X", bid=math.nan),
                        lambda: p.publish("PP.X", ask=math.inf),
                        lambda: p.publish("PP.X", gamma=1.0),
                        lambda: p.publish("bad topic", bid=1.0),
                        lambda: p.publish("PP.X"),
                        lambda: p.publish("PP.book", bid=1.0),
                        lambda: p.levels("PP.X", bids=[(1.0, 1.0)]),
                        lambda: p.levels("PP.book", bids=[(1.0, -1.0)]),
                        lambda: p.trade("PP.X", price=1.0, size=1.0)):
                with pytest.raises(InvalidUpdate):
                    await bad()
            assert p.queued == 0, "nothing refused was queued"
    run(go())


def test_server_refusals_come_back_typed_with_their_indexes():
    d = Daemon(extra_toml="max_topics = 2\n")
    try:
        async def go():
            errors = []
            async with Publisher(d.publish_url, TOKEN, on_error=errors.append) as p:
                await p.publish("MT.A", bid=1.0)
                await p.publish("MT.B", bid=1.0)
                await p.flush()
                await p.publish("MT.C", bid=1.0)  # a third topic: over max_topics
                with pytest.raises(Refused) as refused:
                    await p.flush()
                assert refused.value.code == "too_many_topics"
                assert refused.value.indexes == [0] and refused.value.refused == 1
                assert errors and errors[0].code == "too_many_topics"
        run(go())
    finally:
        d.stop()


def test_interest_events_reach_the_callback_and_the_iterator(daemon):
    async def go():
        heard = []
        async with Publisher(daemon.publish_url, TOKEN, on_interest=heard.append) as p:
            c = Client(daemon.ws)
            await c.connect()
            await c.subscribe(["IN.*"])
            it = p.interest()
            ev = await asyncio.wait_for(it.__anext__(), 5)
            assert (ev.selector, ev.pattern, ev.active) == ("IN.*", True, True)
            await c.unsubscribe(["IN.*"])
            ev = await asyncio.wait_for(it.__anext__(), 5)
            assert (ev.selector, ev.active) == ("IN.*", False)
            assert [h.active for h in heard] == [True, False]
            await c.close()
    run(go())


def test_a_full_queue_waits_or_fails_fast(daemon):
    async def go():
        async with Publisher(daemon.publish_url, TOKEN, queue_size=2) as p:
            # No await between them: the sender cannot drain the queue.
            p.try_publish("BP.A", bid=1.0)
            p.try_publish("BP.A", bid=2.0)
            with pytest.raises(QueueFull):
                p.try_publish("BP.A", bid=3.0)
            # Waiting instead: each goes in once the sender makes room.
            for i in range(50):
                await p.publish("BP.A", bid=float(i))
            await p.flush()
            assert p.acknowledged == 52 and p.lost == 0
    run(go())


def test_keep_live_on_leave_leaves_topics_live(daemon):
    async def go():
        for topic, keep in (("KL.STALE", False), ("KL.LIVE", True)):
            async with Publisher(daemon.publish_url, TOKEN, keep_live_on_leave=keep) as p:
                await p.publish(topic, bid=1.0)
                await p.flush()
        await asyncio.sleep(0.3)  # the departures are taken in
        c = await values_of(daemon.ws, ["KL.*"], lambda c: len(c.values) == 2)
        assert c.topics["KL.STALE"].stale and not c.topics["KL.LIVE"].stale
        await c.close()
    run(go())


def test_a_restarted_daemon_is_reconnected_and_losses_are_counted():
    d = Daemon()
    port = d.port
    try:
        async def go():
            losses = []
            async with Publisher(d.publish_url, TOKEN, on_loss=losses.append) as p:
                await p.publish("RC.A", bid=1.0)
                await p.flush()
                # A burst in flight when the daemon dies without a goodbye.
                for i in range(3000):
                    await p.publish("RC.B", bid=float(i))
                d.kill()
                d2 = Daemon(port=port)
                try:
                    for _ in range(200):
                        if p.reconnects:
                            break
                        await asyncio.sleep(0.05)
                    assert p.reconnects >= 1
                    await p.publish("RC.A", bid=2.0)
                    await p.flush()
                    c = await values_of(d2.ws, ["RC.A"], lambda c: c.values.get("RC.A", {}).get("bid") == 2.0)
                    await c.close()
                    # Honest: every update was either acknowledged by one of
                    # the daemons or counted lost, none twice.
                    assert p.lost == sum(losses)
                    assert p.acknowledged + p.lost == p.queued, (p.acknowledged, p.lost, p.queued)
                finally:
                    d2.stop()
        run(go())
    finally:
        d.stop()


def test_the_csv_replay_example_publishes_every_tick(daemon):
    ticks = ROOT / "clients" / "data" / "ticks.csv"
    env = dict(os.environ, PYTHONPATH=str(HERE))
    out = subprocess.run([sys.executable, str(HERE / "examples" / "replay_csv.py"), daemon.publish_url, TOKEN,
                          str(ticks)], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(open(ticks)))
    assert f"replayed {len(rows)} updates: {len(rows)} acknowledged, 0 lost" in out.stdout, out.stdout
    last = {}
    for r in rows:
        if r["kind"] == "quote":
            last[r["topic"]] = (float(r["bid"]), float(r["ask"]))

    async def go():
        c = await values_of(daemon.ws, list(last),
                            lambda c: all(c.values.get(t, {}).get("bid") == v[0] for t, v in last.items()))
        for t, (bid, ask) in last.items():
            assert c.values[t]["ask"] == ask
        await c.close()
    run(go())


@pytest.fixture
def daemon_extra():
    d = Daemon(extra_toml='[fields]\nextra = ["iv"]\n')
    yield d
    d.stop()


def test_compression_batches_and_a_byte_budget(daemon):
    """The subscriber negotiates permessage-deflate (websockets compresses
    its commands too) and batches; a plain one and a budgeted one beside it.
    Every client ends with the publisher's values."""
    import urllib.request

    async def go():
        clients = [Client(daemon.ws), Client(daemon.ws, format="msgpack"),
                   Client(daemon.ws, batch=False, compression=False),
                   Client(daemon.ws, max_bytes_per_sec=4000)]
        for c in clients:
            await c.connect()
            await c.subscribe(["PB.*"])
        assert [c.batching for c in clients] == [True, True, False, True]
        n = 400
        async with Publisher(daemon.publish_url, TOKEN, compression=True) as p:
            for i in range(1, n + 1):
                for t in ("PB.A", "PB.B", "PB.C"):
                    await p.publish(t, bid=float(i), ask=i + 0.5)
            await p.flush()
        want = {"bid": float(n), "ask": n + 0.5}
        deadline = asyncio.get_running_loop().time() + 15
        while not all(c.values.get(t) == want for c in clients for t in ("PB.A", "PB.B", "PB.C")):
            assert asyncio.get_running_loop().time() < deadline, [c.values for c in clients]
            await asyncio.sleep(0.02)
        assert clients[3].bytes_received < clients[2].bytes_received, "the budget merged updates"
        for c in clients:
            await c.close()

    asyncio.run(go())
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{daemon.port}/metrics").read().decode()
    sessions = next(float(line.split()[1]) for line in metrics.splitlines()
                    if line.startswith("tickcast_deflate_sessions_total "))
    assert sessions >= 4, f"{sessions}: the client and the publisher negotiated permessage-deflate"
