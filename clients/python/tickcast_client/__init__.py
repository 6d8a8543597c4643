"""An asyncio client for tickcast servers (docs/PROTOCOL.md).

It keeps the merged value of every topic it receives, checks each topic's
sequence numbers, resumes with ``since`` after a reconnect (the server sends
exactly what was missed while its history holds it, else a snapshot), and
reconnects by itself with exponential backoff, subscribing everything again.

    async with Client("ws://127.0.0.1:8080/ws") as c:
        await c.subscribe(["BTC-USD", "FX.*"], max_rate=4)
        async for ev in c.events():
            print(ev, c.values.get(ev.topic))
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Dict, List, Optional

import websockets
from websockets.asyncio.client import connect as _ws_connect

# The project's version (scripts/set-version; tests/versions.rs checks it).
__version__ = "0.1.0"

__all__ = [
    "Client", "TickcastError", "Event", "Snapshot", "Update", "Status", "Cleared",
    "Gap", "Disconnected", "Reconnected", "TopicState", "FIELDS", "Book", "BookUpdate",
    "book_checksum", "Publisher", "Interest", "Refused", "QueueFull", "InvalidUpdate",
]

FIELDS = ("bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume")
_NOT_FIELDS = frozenset(("seq", "ts", "conflated", "id"))


def book_checksum(bids, asks) -> int:
    """The checksum of a book's top levels (docs/PROTOCOL.md, "Order books"):
    CRC-32 over the best 10 asks then the best 10 bids, each level's price and
    size as little-endian doubles. ``bids``/``asks``: (price, size), best first."""
    data = b"".join(struct.pack("<dd", p, s) for p, s in list(asks[:10]) + list(bids[:10]))
    return zlib.crc32(data)


class TickcastError(Exception):
    """The server refused a command: ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Event:
    """Base of every event the client yields."""
    topic: Optional[str] = None


@dataclass
class Snapshot(Event):
    """The full value of a topic (after a subscribe, or a resume that could not replay)."""
    seq: int = 0
    epoch: str = ""
    stale: bool = False
    fields: Dict[str, float] = field(default_factory=dict)


@dataclass
class Update(Event):
    """Changed fields; ``conflated`` > 1 when it stands for several published updates."""
    seq: int = 0
    fields: Dict[str, float] = field(default_factory=dict)
    conflated: int = 1
    epoch: Optional[str] = None


@dataclass
class Book(Event):
    """A book topic's levels (a ``….book`` topic), best first, after a
    ``book`` snapshot (``conflated`` 1) or a ``book_update``."""
    seq: int = 0
    depth: int = 10
    bids: List[tuple] = field(default_factory=list)
    asks: List[tuple] = field(default_factory=list)
    conflated: int = 1


@dataclass
class BookUpdate(Book):
    """The levels after a ``book_update`` (the event's changes applied)."""


@dataclass
class Status(Event):
    """The topic went stale (its publisher left, or it is quiet) or live again."""
    stale: bool = False


@dataclass
class Cleared(Event):
    """A publisher cleared the topic: its value is gone, numbering restarts at 1."""


@dataclass
class Gap(Event):
    """A ``seq`` jump nothing explains: the client reconnects and resumes."""
    expected: int = 0
    got: int = 0


@dataclass
class Disconnected(Event):
    reason: str = ""


@dataclass
class Reconnected(Event):
    """Subscribed again; ``recovered`` lists the topics resumed from history."""
    recovered: List[str] = field(default_factory=list)


@dataclass
class TopicState:
    seq: int = 0
    epoch: Optional[str] = None
    stale: bool = False


class Client:
    """One connection to a tickcast server, kept up across failures.

    ``values`` maps each topic to its merged fields; ``topics`` to its
    ``TopicState`` (seq, epoch, stale). Use as an async context manager, or
    call ``connect()`` and ``close()``.
    """

    def __init__(self, url: str, *, token: Optional[str] = None, format: str = "json",
                 reconnect: bool = True, min_backoff: float = 0.1, max_backoff: float = 5.0,
                 ping_interval: Optional[float] = 20.0, command_timeout: float = 10.0,
                 ca_file: Optional[str] = None, ssl_context=None, compression: bool = True,
                 batch: bool = True, max_bytes_per_sec: Optional[int] = None):
        if format not in ("json", "msgpack"):
            raise ValueError("format is 'json' or 'msgpack'")
        if format == "msgpack":
            import msgpack  # noqa: F401  (optional dependency: pip install tickcast-client[msgpack])
        self.url = url
        self.token = token
        # wss://: trust ca_file (e.g. tickcastd --tls-self-signed's ca.pem), or
        # a context of the caller's; the system's authorities otherwise.
        if ca_file is not None and ssl_context is None:
            import ssl
            ssl_context = ssl.create_default_context(cafile=ca_file)
        self.ssl_context = ssl_context
        self.format = format
        self.reconnect = reconnect
        self.min_backoff, self.max_backoff = min_backoff, max_backoff
        self.ping_interval = ping_interval
        self.command_timeout = command_timeout
        # permessage-deflate (the server compresses large events once for
        # every subscriber that negotiated it) and batches (the events of one
        # server flush in one message); a byte budget the server merges to.
        self.compression = compression
        self.batch = batch
        self.max_bytes_per_sec = max_bytes_per_sec
        #: Whether the server agreed to batches on the current connection.
        self.batching = False
        #: Bytes of messages received (after inflating).
        self.bytes_received = 0
        self.values: Dict[str, Dict[str, float]] = {}
        self.topics: Dict[str, TopicState] = {}
        # Books of ….book topics: topic -> {"bids": {price: size}, "asks": {...}, "depth": n}
        self.books: Dict[str, Dict[str, Any]] = {}
        self._subscriptions: Dict[str, Dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._pending: Dict[int, asyncio.Future] = {}
        self._on_reply: Dict[int, Any] = {}
        self._events: asyncio.Queue = asyncio.Queue()
        self._ws = None
        self._task: Optional[asyncio.Task] = None
        self._closing = False
        self._connected = asyncio.Event()

    async def __aenter__(self) -> "Client":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self) -> None:
        """Opens the connection (raising if the first attempt fails) and starts reading."""
        self._ws = await self._open()
        self._connected.set()
        self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    async def subscribe(self, topics: List[str], *, max_rate: Optional[float] = None,
                        depth: Optional[int] = None) -> Dict[str, Any]:
        """Subscribes (remembered for reconnects); returns the ``subscribed`` reply.
        ``depth``: levels a side of order-book topics (10, 25, 100, 500 or 1000).

        Raises ``TickcastError`` when the server refuses it.
        """
        # A book is always sent whole (it has no history).
        since = {t: {"seq": s.seq, "epoch": s.epoch} for t, s in self.topics.items()
                 if s.epoch and s.seq and t not in self.books and any(_covers(p, t) for p in topics)}
        cmd: Dict[str, Any] = {"op": "subscribe", "topics": list(topics)}
        if max_rate is not None:
            cmd["max_rate"] = max_rate
        if depth is not None:
            cmd["depth"] = depth
        if since:
            cmd["since"] = since
        # Recorded before the reply: its events may come in the same message
        # (a batch) as the reply to an earlier unsubscribe, whose clean-up
        # must see this subscription.
        before = {t: self._subscriptions.get(t) for t in topics}
        for t in topics:
            self._subscriptions[t] = {"max_rate": max_rate, "depth": depth}
        try:
            return await self._command(cmd)
        except TickcastError:
            # Refused: not a subscription. (A lost connection keeps it: the
            # reconnect subscribes again.)
            for t, o in before.items():
                if o is None:
                    self._subscriptions.pop(t, None)
                else:
                    self._subscriptions[t] = o
            raise

    def book(self, topic: str) -> Optional[Book]:
        """A book topic's levels, best first."""
        b = self.books.get(topic)
        if b is None:
            return None
        bids, asks = _ladders(b)
        return Book(topic, self.topics.get(topic, TopicState()).seq, b["depth"], bids, asks)

    async def unsubscribe(self, topics: List[str]) -> Dict[str, Any]:
        for t in topics:
            self._subscriptions.pop(t, None)
        # Dropped now (a subscribe sent next must not resume them with
        # `since`) and again when the reply is read, for events in flight.
        self._forget_uncovered()
        return await self._command({"op": "unsubscribe", "topics": list(topics)},
                                   on_reply=self._forget_uncovered)

    def _covered(self, topic: str) -> bool:
        return any(_covers(p, topic) for p in self._subscriptions)

    def _forget_uncovered(self) -> None:
        for t in list(self.values) + list(self.books):
            if not self._covered(t):
                self.values.pop(t, None)
                self.books.pop(t, None)
                self.topics.pop(t, None)

    async def list_topics(self, prefix: str = "") -> List[str]:
        return (await self._command({"op": "topics", "prefix": prefix}))["topics"]

    async def ping(self) -> int:
        """An application-level ping; returns the server's clock (ns)."""
        return (await self._command({"op": "ping"}))["ts"]

    async def events(self) -> AsyncIterator[Event]:
        """Every event, in order, until the client is closed."""
        while True:
            ev = await self._events.get()
            if ev is None:
                return
            yield ev

    async def next_event(self, timeout: Optional[float] = None) -> Event:
        ev = await asyncio.wait_for(self._events.get(), timeout)
        if ev is None:
            raise ConnectionError("client closed")
        return ev

    def next_event_nowait(self) -> Optional[Event]:
        """The next event already received, or None when none is waiting.

        It does not yield to the event loop, so no message is applied between
        this call and the caller's next line: after reading until it returns
        None, ``book()`` and ``value()`` agree with the last event read.
        (A ``next_event`` that times out awaits its own cancellation, and the
        reader may apply more messages meanwhile.)
        """
        try:
            ev = self._events.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if ev is None:
            # Keep the close marker for the next awaiting reader.
            self._events.put_nowait(None)
            raise ConnectionError("client closed")
        return ev

    # -- internals ---------------------------------------------------------

    async def _open(self):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        base = "tickcast.msgpack" if self.format == "msgpack" else "tickcast.json"
        # Preferred first: a server without batches picks the plain one.
        protos = [base + "+batch", base] if self.batch else [base]
        tls = {"ssl": self.ssl_context} if self.ssl_context is not None else {}
        url = self.url
        if self.max_bytes_per_sec:
            url += ("&" if "?" in url else "?") + f"max_bytes_per_sec={int(self.max_bytes_per_sec)}"
        ws = await _ws_connect(url, subprotocols=protos, additional_headers=headers,
                               compression="deflate" if self.compression else None,
                               ping_interval=self.ping_interval, max_size=None, **tls)
        self.batching = (ws.subprotocol or "").endswith("+batch")
        return ws

    def _encode(self, cmd: Dict[str, Any]):
        if self.format == "msgpack":
            import msgpack
            return msgpack.packb(cmd)
        return json.dumps(cmd)

    def _decode(self, data) -> List[Dict[str, Any]]:
        """The events of one message: one, or a batch (JSON lines, MessagePack
        values back to back)."""
        self.bytes_received += len(data)
        if isinstance(data, bytes):
            import msgpack
            if not self.batching:
                return [msgpack.unpackb(data)]
            unpacker = msgpack.Unpacker()
            unpacker.feed(data)
            return list(unpacker)
        if not self.batching:
            return [json.loads(data)]
        return [json.loads(line) for line in data.split("\n")]

    async def _command(self, cmd: Dict[str, Any], on_reply=None) -> Dict[str, Any]:
        """Sends a command; ``on_reply`` runs as soon as its reply is read."""
        await self._connected.wait()
        cid = next(self._ids)
        cmd["id"] = cid
        fut = asyncio.get_running_loop().create_future()
        self._pending[cid] = fut
        if on_reply is not None:
            self._on_reply[cid] = on_reply
        try:
            await self._ws.send(self._encode(cmd))
            reply = await asyncio.wait_for(fut, self.command_timeout)
        finally:
            self._pending.pop(cid, None)
            self._on_reply.pop(cid, None)
        if reply.get("event") == "error":
            raise TickcastError(reply.get("code", "error"), reply.get("message", ""))
        return reply

    async def _run(self) -> None:
        backoff = self.min_backoff
        while True:
            reason = "closed"
            try:
                async for data in self._ws:
                    if not all(self._handle(ev) for ev in self._decode(data)):
                        reason = "gap"
                        await self._ws.close()
                        break
            except websockets.ConnectionClosed as e:
                reason = f"connection closed: {e}"
            except OSError as e:
                reason = str(e)
            self._connected.clear()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(reason))
            if self._closing or not self.reconnect:
                await self._events.put(None)
                return
            await self._events.put(Disconnected(reason=reason))
            while not self._closing:
                await asyncio.sleep(backoff * (0.5 + random.random() / 2))
                try:
                    self._ws = await self._open()
                    break
                except (OSError, websockets.WebSocketException, asyncio.TimeoutError):
                    backoff = min(backoff * 2, self.max_backoff)
            backoff = self.min_backoff
            self._connected.set()
            asyncio.create_task(self._resubscribe())

    async def _resubscribe(self) -> None:
        recovered: List[str] = []
        by_options: Dict[tuple, List[str]] = {}
        for pattern, o in self._subscriptions.items():
            by_options.setdefault((o["max_rate"], o["depth"]), []).append(pattern)
        try:
            for (rate, depth), patterns in by_options.items():
                reply = await self.subscribe(patterns, max_rate=rate, depth=depth)
                recovered += reply.get("recovered", [])
        except (ConnectionError, asyncio.TimeoutError):
            return  # the reader reconnects again
        await self._events.put(Reconnected(recovered=recovered))

    def _handle(self, ev: Dict[str, Any]) -> bool:
        """Applies one server event; False on a gap (the caller reconnects)."""
        cid = ev.get("id")
        if cid is not None and cid in self._pending:
            fut = self._pending[cid]
            if not fut.done():
                on_reply = self._on_reply.pop(cid, None)
                if on_reply is not None and ev.get("event") != "error":
                    on_reply()
                fut.set_result(ev)
            return True
        kind = ev.get("event")
        topic = ev.get("topic")
        # Still in flight when it was unsubscribed: its state is gone, and a
        # book change could not be applied to a book no longer held.
        if topic is not None and not self._covered(topic):
            return True
        # Every number but seq, ts and conflated is a field: the seven price
        # fields and the server's extra fields ([fields] extra), by name.
        fields = {k: v for k, v in ev.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool)
                  and k not in _NOT_FIELDS}
        if kind == "snapshot":
            self.values[topic] = dict(fields)
            self.topics[topic] = TopicState(ev["seq"], ev.get("epoch"), bool(ev.get("stale")))
            self._events.put_nowait(Snapshot(topic, ev["seq"], ev.get("epoch", ""),
                                             bool(ev.get("stale")), fields))
        elif kind == "update":
            state = self.topics.setdefault(topic, TopicState())
            conflated = ev.get("conflated", 1)
            if "epoch" in ev:
                state.epoch = ev["epoch"]
                self.values[topic] = {}
            elif state.seq and ev["seq"] != state.seq + conflated:
                self._events.put_nowait(Gap(topic, state.seq + conflated, ev["seq"]))
                return False
            state.seq = ev["seq"]
            self.values.setdefault(topic, {}).update(fields)
            self._events.put_nowait(Update(topic, ev["seq"], fields, conflated, ev.get("epoch")))
        elif kind in ("book", "book_update"):
            state = self.topics.setdefault(topic, TopicState())
            n = ev.get("conflated", 1)
            if kind == "book_update" and state.seq and "epoch" not in ev and ev["seq"] != state.seq + n:
                self._events.put_nowait(Gap(topic, state.seq + n, ev["seq"]))
                return False
            b = self.books.get(topic)
            if kind == "book" or b is None:
                b = self.books[topic] = {"bids": {}, "asks": {}, "depth": ev["depth"]}
            for side in ("bids", "asks"):
                for price, size in ev[side]:
                    if size == 0:
                        b[side].pop(price, None)
                    else:
                        b[side][price] = size
            bids, asks = _ladders(b)
            if book_checksum(bids, asks) != ev["checksum"]:
                # Our copy is wrong: reconnecting subscribes again, for a fresh book.
                self._events.put_nowait(Gap(topic, ev["checksum"], "checksum"))
                return False
            state.seq = ev["seq"]
            if "epoch" in ev:
                state.epoch = ev["epoch"]
            cls = Book if kind == "book" else BookUpdate
            self._events.put_nowait(cls(topic, ev["seq"], b["depth"], bids, asks, n))
        elif kind == "status":
            stale = ev.get("state") == "stale"
            self.topics.setdefault(topic, TopicState()).stale = stale
            self._events.put_nowait(Status(topic, stale))
        elif kind == "cleared":
            self.values.pop(topic, None)
            self.books.pop(topic, None)
            self.topics[topic] = TopicState()
            self._events.put_nowait(Cleared(topic))
        return True


def _ladders(b: Dict[str, Any]):
    """A book's sides as (price, size) lists, best first."""
    return (sorted(b["bids"].items(), reverse=True), sorted(b["asks"].items()))


def _covers(pattern: str, topic: str) -> bool:
    return topic.startswith(pattern[:-1]) if pattern.endswith("*") else pattern == topic


# The publisher needs msgpack (pip install tickcast-client[msgpack]); the
# subscriber does not, so it is imported only when asked for.
def __getattr__(name):
    if name in ("Publisher", "Interest", "Refused", "QueueFull", "InvalidUpdate"):
        from . import publisher
        return getattr(publisher, name)
    raise AttributeError(name)
