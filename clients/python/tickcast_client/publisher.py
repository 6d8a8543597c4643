"""A feed handler's side: publishing into a tickcast server over ``/publish``
(docs/PROTOCOL.md, "Publishing over the network").

    async with Publisher("ws://127.0.0.1:8080/publish", token="...") as p:
        await p.publish("AAPL", bid=189.49, ask=189.51)
        await p.levels("BTC-USD.book", bids=[(64000.5, 1.2)], asks=[(64001.0, 0.7)])
        await p.trade("BTC-USD.trades", price=64000.7, size=0.05)
        await p.clear("OLD")
        await p.flush()

Updates are checked at the call (topic syntax and length, NaN and
infinities, field names against the server's extra fields, the token's
publish scope), queued, and sent in batches (one MessagePack frame per
batch) by a background task. When the server stops reading (its ingest
queue is full), the queue fills: ``publish`` then waits for room, and
``try_publish`` fails at once with ``QueueFull``. A dropped connection is
reconnected with exponential backoff; updates sent on it but not yet
acknowledged may not have been published, and are counted in ``lost`` (and
passed to ``on_loss``), never hidden. Updates the server refuses come back
as ``Refused`` errors with their indexes in their frame (``on_error``, and
``flush`` raises the first). ``interest`` events (a topic or pattern gaining
its first subscriber, or losing its last) go to ``on_interest`` and to the
``interest()`` async iterator.
"""

from __future__ import annotations

import asyncio
import math
import re
import ssl as _ssl
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Dict, Iterable, List, Optional, Tuple

import msgpack
from websockets.asyncio.client import connect as _ws_connect

__all__ = ["Publisher", "Interest", "Refused", "QueueFull", "InvalidUpdate"]

PRICE_FIELDS = ("bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume")
_TOPIC = re.compile(r"^[A-Za-z0-9._\-:/]+$")


class InvalidUpdate(ValueError):
    """Refused at the call, before anything was sent: a bad topic, a value
    that is NaN or infinite, an unknown field, a topic outside the token's
    scope, or an update that sets nothing."""


class QueueFull(Exception):
    """``try_publish``: the queue is full (the server is not reading)."""


class Refused(Exception):
    """The server refused updates: ``code`` (``bad_update``,
    ``too_many_topics``, ``unavailable``, ``forbidden``, ``bad_frame``),
    ``indexes`` their positions in their frame, ``refused`` how many."""

    def __init__(self, code: str, message: str, indexes: List[int], refused: int):
        super().__init__(f"{code}: {message} (indexes {indexes})")
        self.code, self.message, self.indexes, self.refused = code, message, indexes, refused


@dataclass
class Interest:
    """A topic (``pattern`` False) or a pattern such as ``FX.*`` gained its
    first subscriber on the server (``active``) or lost its last."""
    selector: str
    pattern: bool
    active: bool


class Publisher:
    """One ``/publish`` connection, kept up across failures."""

    def __init__(self, url: str, token: str, *, queue_size: int = 65536, batch_max: int = 512,
                 min_backoff: float = 0.05, max_backoff: float = 5.0,
                 keep_live_on_leave: bool = False, ca_file: Optional[str] = None,
                 ssl_context: Optional[_ssl.SSLContext] = None,
                 on_interest: Optional[Callable[[Interest], None]] = None,
                 on_error: Optional[Callable[[Refused], None]] = None,
                 on_loss: Optional[Callable[[int], None]] = None,
                 compression: bool = False):
        self.url, self.token = url, token
        # permessage-deflate on the publisher's batches: fewer bytes on a WAN
        # link for CPU on both ends (the server inflates each batch); off by
        # default, since feeds usually run next to the server.
        self.compression = compression
        self.batch_max = batch_max
        self.min_backoff, self.max_backoff = min_backoff, max_backoff
        self.keep_live_on_leave = keep_live_on_leave
        if ca_file is not None and ssl_context is None:
            ssl_context = _ssl.create_default_context(cafile=ca_file)
        self.ssl_context = ssl_context
        self.on_interest, self.on_error, self.on_loss = on_interest, on_error, on_loss
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self._interest: asyncio.Queue = asyncio.Queue()
        self._errors: List[Refused] = []  # since the last flush
        self._refused = 0  # updates the server refused, all told
        # What the server announced on the upgrade (checked at the call).
        self.max_topic_len = 64
        self.fields: Tuple[str, ...] = ()
        self.scope: Optional[List[str]] = None
        # Counters: queued by calls, written to a connection, acknowledged by
        # the server, and written but never acknowledged before a drop.
        self.queued = self.sent = self.acknowledged = self.lost = self.reconnects = 0
        self._acked_here = self._sent_here = 0
        self._ws = None
        self._task: Optional[asyncio.Task] = None
        self._closing = False

    async def __aenter__(self) -> "Publisher":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- calls -------------------------------------------------------------

    async def connect(self) -> None:
        """Connects (a wrong URL or token fails here) and starts sending."""
        await self._open()
        self._task = asyncio.ensure_future(self._run())

    async def publish(self, topic: str, *, ts: Optional[int] = None, **fields: float) -> None:
        """Queues an update (fields by name: price fields and the server's
        extra fields), waiting while the queue is full."""
        await self._put(self._update(topic, fields, ts))

    def try_publish(self, topic: str, *, ts: Optional[int] = None, **fields: float) -> None:
        """Queues an update, or raises ``QueueFull`` at once when the queue is full."""
        item = self._update(topic, fields, ts)
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            raise QueueFull("the publish queue is full: the server is not reading") from None
        self.queued += 1

    async def levels(self, topic: str, *, bids: Iterable[Tuple[float, float]] = (),
                     asks: Iterable[Tuple[float, float]] = (), replace: bool = False) -> None:
        """Queues a book change on a ``….book`` topic: levels as (price,
        size), size 0 removing one; ``replace`` makes them the whole book."""
        if not topic.endswith(".book"):
            raise InvalidUpdate(f"{topic!r}: levels go to a topic ending with .book")
        self._check_topic(topic)
        item: Dict[str, Any] = {"topic": topic}
        for side, levels in (("bids", bids), ("asks", asks)):
            pairs = [[_finite(f"{side} price", p), _finite(f"{side} size", s)] for p, s in levels]
            if any(s < 0 for _, s in pairs):
                raise InvalidUpdate(f"{topic}: a size is negative")
            if pairs:
                item[side] = pairs
        if replace:
            item["replace"] = True
        elif "bids" not in item and "asks" not in item:
            raise InvalidUpdate(f"{topic}: no level (pass replace=True to empty the book)")
        await self._put(item)

    async def trade(self, topic: str, *, price: float, size: float, ts: Optional[int] = None) -> None:
        """Queues a trade on a ``….trades`` topic (never merged: every one is delivered)."""
        if not topic.endswith(".trades"):
            raise InvalidUpdate(f"{topic!r}: trades go to a topic ending with .trades")
        await self.publish(topic, ts=ts, last=price, last_size=size)

    async def clear(self, topic: str) -> None:
        """Queues a clear: subscribers get ``cleared``, and the next update
        starts a new epoch at ``seq`` 1."""
        self._check_topic(topic)
        await self._put({"topic": topic, "clear": True})

    async def flush(self, timeout: float = 10.0) -> None:
        """Waits until everything queued is acknowledged; raises the first
        ``Refused`` the server sent since the last flush."""
        async def idle():
            while self._queue.qsize() or self.acknowledged + self._refused < self.queued - self.lost:
                await asyncio.sleep(0.005)
        await asyncio.wait_for(idle(), timeout)
        if self._errors:
            first, self._errors = self._errors[0], []
            raise first

    async def interest(self) -> AsyncIterator[Interest]:
        """Every interest event, as they come (also given to ``on_interest``)."""
        while True:
            yield await self._interest.get()

    async def close(self) -> None:
        self._closing = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._ws is not None:
            await self._ws.close()

    # -- checks at the call -------------------------------------------------

    def _check_topic(self, topic: str) -> None:
        if not topic or len(topic) > self.max_topic_len or not _TOPIC.match(topic):
            raise InvalidUpdate(f"topic {topic!r}: 1-{self.max_topic_len} characters of A-Z a-z 0-9 . _ - : /")
        if self.scope is not None and not any(_covers(p, topic) for p in self.scope):
            raise InvalidUpdate(f"topic {topic!r} is outside this token's publish scope {self.scope}")

    def _update(self, topic: str, fields: Dict[str, float], ts: Optional[int]) -> Dict[str, Any]:
        self._check_topic(topic)
        if topic.endswith(".book"):
            raise InvalidUpdate(f"{topic}: a book takes levels (levels()), not fields")
        if not fields:
            raise InvalidUpdate(f"{topic}: the update sets no field")
        item: Dict[str, Any] = {"topic": topic}
        if ts is not None:
            item["ts"] = int(ts)
        for name, value in fields.items():
            if name not in PRICE_FIELDS and name not in self.fields:
                known = ", ".join(PRICE_FIELDS + self.fields)
                raise InvalidUpdate(f"{topic}: unknown field {name!r}; this server's fields are {known}")
            item[name] = _finite(name, value)
        return item

    # -- the connection -----------------------------------------------------

    async def _put(self, item: Dict[str, Any]) -> None:
        await self._queue.put(item)
        self.queued += 1

    async def _open(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        if self.keep_live_on_leave:
            headers["Tickcast-On-Leave"] = "keep"
        tls = {"ssl": self.ssl_context} if self.ssl_context is not None else {}
        self._ws = await _ws_connect(self.url, additional_headers=headers,
                                     compression="deflate" if self.compression else None,
                                     max_size=None, **tls)
        h = self._ws.response.headers
        self.max_topic_len = int(h.get("Tickcast-Max-Topic-Len", self.max_topic_len))
        self.fields = tuple(f.strip() for f in h.get("Tickcast-Fields", "").split(",") if f.strip())
        scope = h.get("Tickcast-Publish-Scope")
        self.scope = [p.strip() for p in scope.split(",")] if scope else None
        self._acked_here = self._sent_here = 0

    async def _run(self) -> None:
        backoff = self.min_backoff
        while not self._closing:
            reader = asyncio.ensure_future(self._read())
            sender = asyncio.ensure_future(self._send())
            done, pending = await asyncio.wait({reader, sender}, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            if self._closing:
                return
            # The connection dropped: what it carried unacknowledged may be lost.
            unacked = self._sent_here - self._acked_here
            if unacked > 0:
                self.lost += unacked
                if self.on_loss:
                    self.on_loss(unacked)
            while not self._closing:
                await asyncio.sleep(backoff)
                try:
                    await self._open()
                    self.reconnects += 1
                    backoff = self.min_backoff
                    break
                except Exception:
                    backoff = min(backoff * 2, self.max_backoff)

    async def _send(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.batch_max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            # Counted before the write: if the connection drops during it,
            # these may or may not have arrived, so they count as lost.
            self.sent += len(batch)
            self._sent_here += len(batch)
            await self._ws.send(msgpack.packb(batch))

    async def _read(self) -> None:
        async for frame in self._ws:
            if isinstance(frame, str):
                continue
            ev = msgpack.unpackb(frame)
            kind = ev.get("event")
            if kind == "ack":
                gained = ev["count"] - self._acked_here
                self._acked_here = ev["count"]
                self.acknowledged += gained
            elif kind == "error":
                refused = Refused(ev.get("code", ""), ev.get("message", ""), list(ev.get("indexes") or []),
                                  int(ev.get("refused") or 0))
                self._errors.append(refused)
                self._refused += refused.refused
                if self.on_error:
                    self.on_error(refused)
            elif kind == "interest":
                i = Interest(ev["selector"], bool(ev["pattern"]), bool(ev["active"]))
                self._interest.put_nowait(i)
                if self.on_interest:
                    self.on_interest(i)


def _finite(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidUpdate(f"{name}: {value!r} is not a number") from None
    if math.isnan(v) or math.isinf(v):
        raise InvalidUpdate(f"{name}: {value!r} is not finite (NaN and infinities cannot be published)")
    return v


def _covers(pattern: str, topic: str) -> bool:
    return topic.startswith(pattern[:-1]) if pattern.endswith("*") else pattern == topic

