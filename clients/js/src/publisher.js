// A feed handler's side in Node: publishing into a tickcast server over
// /publish (docs/PROTOCOL.md, "Publishing over the network").
//
//   import WebSocket from "ws";
//   import { encode, decode } from "@msgpack/msgpack";
//   import { Publisher } from "tickcast-client/publisher";
//   const p = new Publisher("ws://127.0.0.1:8080/publish", "token", { WebSocket, msgpack: { encode, decode } });
//   await p.connect();
//   await p.publish("AAPL", { bid: 189.49, ask: 189.51 });
//   await p.flush();
//
// Updates are checked at the call (topic syntax and length, NaN and
// infinities, field names against the server's extra fields, the token's
// publish scope), queued, and sent in batches (one MessagePack frame per
// batch). When the server stops reading, the socket's buffer fills and the
// queue with it: publish() then waits for room and tryPublish() throws
// QueueFull at once. A dropped connection is reconnected with exponential
// backoff; updates sent on it but not acknowledged may not have been
// published, and are counted in `lost` (and the "loss" event). Updates the
// server refuses come back as Refused errors with their indexes ("error"
// event; flush() rejects with the first). "interest" events say when a topic
// or pattern gains its first subscriber or loses its last (also as an async
// iterator: interest()).

const PRICE_FIELDS = ["bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume"];
const TOPIC = /^[A-Za-z0-9._\-:/]+$/;

/** Refused at the call, before anything was sent. */
export class InvalidUpdate extends Error {}

/** tryPublish(): the queue is full (the server is not reading). */
export class QueueFull extends Error {}

/** The server refused updates: code, message, indexes (in their frame), refused. */
export class Refused extends Error {
  constructor(code, message, indexes, refused) {
    super(`${code}: ${message} (indexes ${JSON.stringify(indexes)})`);
    Object.assign(this, { code, indexes, refused, serverMessage: message });
  }
}

function finite(name, value) {
  const v = Number(value);
  if (typeof value !== "number" && typeof value !== "bigint") {
    throw new InvalidUpdate(`${name}: ${JSON.stringify(value)} is not a number`);
  }
  if (!Number.isFinite(v)) throw new InvalidUpdate(`${name}: ${v} is not finite (NaN and infinities cannot be published)`);
  return v;
}

export class Publisher {
  constructor(url, token, opts = {}) {
    if (!opts.msgpack) throw new TypeError("pass { msgpack: { encode, decode } } (e.g. from @msgpack/msgpack)");
    this.url = url;
    this.token = token;
    this.WebSocket = opts.WebSocket ?? globalThis.WebSocket;
    this.msgpack = opts.msgpack;
    this.queueSize = opts.queueSize ?? 65536;
    this.batchMax = opts.batchMax ?? 512;
    this.highWater = opts.highWater ?? 1 << 20;
    this.minBackoff = opts.minBackoff ?? 50;
    this.maxBackoff = opts.maxBackoff ?? 5000;
    this.keepLiveOnLeave = opts.keepLiveOnLeave ?? false;
    this.maxTopicLen = 64;
    this.fields = [];
    this.scope = null;
    this.queued = 0; this.sent = 0; this.acknowledged = 0; this.lost = 0; this.reconnects = 0;
    this._sentHere = 0; this._ackedHere = 0; this._refused = 0;
    this._queue = [];
    this._roomWaiters = [];
    this._errors = [];
    this._listeners = new Map();
    this._interest = [];
    this._interestWaiters = [];
    this._closed = false;
  }

  /** Connects (a wrong URL or token rejects here) and starts sending. */
  connect() {
    return this._open(true);
  }

  on(type, fn) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(fn);
    return () => this._listeners.get(type).delete(fn);
  }

  /** Queues an update ({bid, ask, ..., or the server's extra fields}), waiting for room. */
  async publish(topic, fields, { ts } = {}) {
    const item = this._update(topic, fields, ts);
    while (this._queue.length >= this.queueSize) {
      await new Promise((r) => this._roomWaiters.push(r));
    }
    this._push(item);
  }

  /** Queues an update, or throws QueueFull at once when the queue is full. */
  tryPublish(topic, fields, { ts } = {}) {
    const item = this._update(topic, fields, ts);
    if (this._queue.length >= this.queueSize) throw new QueueFull("the publish queue is full: the server is not reading");
    this._push(item);
  }

  /** Queues a book change on a ….book topic: [price, size] levels, size 0 removes; replace: the whole book. */
  async levels(topic, { bids = [], asks = [], replace = false } = {}) {
    if (!topic.endsWith(".book")) throw new InvalidUpdate(`${topic}: levels go to a topic ending with .book`);
    this._checkTopic(topic);
    const item = { topic };
    for (const [side, levels] of [["bids", bids], ["asks", asks]]) {
      const pairs = levels.map(([p, s]) => [finite(`${side} price`, p), finite(`${side} size`, s)]);
      if (pairs.some(([, s]) => s < 0)) throw new InvalidUpdate(`${topic}: a size is negative`);
      if (pairs.length) item[side] = pairs;
    }
    if (replace) item.replace = true;
    else if (!item.bids && !item.asks) throw new InvalidUpdate(`${topic}: no level (pass replace: true to empty the book)`);
    await this._waitRoom();
    this._push(item);
  }

  /** Queues a trade on a ….trades topic (never merged). */
  async trade(topic, { price, size, ts } = {}) {
    if (!topic.endsWith(".trades")) throw new InvalidUpdate(`${topic}: trades go to a topic ending with .trades`);
    return this.publish(topic, { last: price, last_size: size }, { ts });
  }

  /** Queues a clear: subscribers get `cleared`, the next update starts a new epoch. */
  async clear(topic) {
    this._checkTopic(topic);
    await this._waitRoom();
    this._push({ topic, clear: true });
  }

  /** Resolves once everything queued is acknowledged; rejects with the first Refused since the last flush. */
  async flush(ms = 10000) {
    const deadline = Date.now() + ms;
    while (this._queue.length || this.acknowledged + this._refused < this.queued - this.lost) {
      if (Date.now() > deadline) throw new Error("flush timed out");
      await new Promise((r) => setTimeout(r, 5));
    }
    if (this._errors.length) {
      const first = this._errors[0];
      this._errors = [];
      throw first;
    }
  }

  /** Every interest event as it comes: for await (const i of p.interest()). */
  async *interest() {
    for (;;) {
      if (this._interest.length) yield this._interest.shift();
      else yield await new Promise((r) => this._interestWaiters.push(r));
    }
  }

  close() {
    this._closed = true;
    clearTimeout(this._timer);
    this._ws?.close(1000);
  }

  // -- internals ----------------------------------------------------------

  _emit(type, ev) {
    for (const fn of this._listeners.get(type) ?? []) fn(ev);
  }

  _checkTopic(topic) {
    if (typeof topic !== "string" || !topic || topic.length > this.maxTopicLen || !TOPIC.test(topic)) {
      throw new InvalidUpdate(`topic ${JSON.stringify(topic)}: 1-${this.maxTopicLen} characters of A-Z a-z 0-9 . _ - : /`);
    }
    if (this.scope && !this.scope.some((p) => (p.endsWith("*") ? topic.startsWith(p.slice(0, -1)) : p === topic))) {
      throw new InvalidUpdate(`topic ${topic} is outside this token's publish scope ${this.scope}`);
    }
  }

  _update(topic, fields = {}, ts) {
    this._checkTopic(topic);
    if (topic.endsWith(".book")) throw new InvalidUpdate(`${topic}: a book takes levels (levels()), not fields`);
    const names = Object.keys(fields);
    if (!names.length) throw new InvalidUpdate(`${topic}: the update sets no field`);
    const item = { topic };
    if (ts !== undefined) item.ts = ts;
    for (const name of names) {
      if (!PRICE_FIELDS.includes(name) && !this.fields.includes(name)) {
        throw new InvalidUpdate(`${topic}: unknown field ${name}; this server's fields are ${[...PRICE_FIELDS, ...this.fields].join(", ")}`);
      }
      item[name] = finite(name, fields[name]);
    }
    return item;
  }

  async _waitRoom() {
    while (this._queue.length >= this.queueSize) await new Promise((r) => this._roomWaiters.push(r));
  }

  _push(item) {
    this._queue.push(item);
    this.queued += 1;
    this._pump();
  }

  /** Sends batches while the socket takes them; when its buffer is over
   * the high-water mark (the server is not reading), waits and tries again. */
  _pump() {
    if (this._pumping || !this._ws || this._ws.readyState !== 1) return;
    this._pumping = true;
    while (this._queue.length && this._ws.bufferedAmount < this.highWater) {
      const batch = this._queue.splice(0, this.batchMax);
      // Counted before the write: if the connection drops, they may be lost.
      this.sent += batch.length;
      this._sentHere += batch.length;
      this._ws.send(this.msgpack.encode(batch));
      for (const wake of this._roomWaiters.splice(0)) wake();
    }
    this._pumping = false;
    if (this._queue.length) this._timer = setTimeout(() => this._pump(), 5);
  }

  _open(first) {
    const headers = { Authorization: `Bearer ${this.token}` };
    if (this.keepLiveOnLeave) headers["Tickcast-On-Leave"] = "keep";
    const ws = new this.WebSocket(this.url, [], { headers });
    ws.binaryType = "arraybuffer";
    return new Promise((resolve, reject) => {
      ws.on?.("upgrade", (res) => this._learn(res.headers));
      ws.onopen = () => {
        this._ws = ws;
        this._sentHere = 0;
        this._ackedHere = 0;
        resolve();
        this._pump();
      };
      ws.onerror = (e) => { if (first && !this._ws) reject(new Error(`cannot connect to ${this.url}: ${e.message ?? e}`)); };
      ws.onmessage = (m) => this._onEvent(this.msgpack.decode(new Uint8Array(m.data)));
      ws.onclose = () => this._onClose(ws, first);
    });
  }

  _learn(h) {
    if (h["tickcast-max-topic-len"]) this.maxTopicLen = Number(h["tickcast-max-topic-len"]);
    this.fields = (h["tickcast-fields"] ?? "").split(",").map((f) => f.trim()).filter(Boolean);
    const scope = h["tickcast-publish-scope"];
    this.scope = scope ? scope.split(",").map((p) => p.trim()) : null;
  }

  _onEvent(ev) {
    if (ev.event === "ack") {
      this.acknowledged += ev.count - this._ackedHere;
      this._ackedHere = ev.count;
    } else if (ev.event === "error") {
      const r = new Refused(ev.code, ev.message, ev.indexes ?? [], ev.refused ?? 0);
      this._refused += r.refused;
      this._errors.push(r);
      this._emit("error", r);
    } else if (ev.event === "interest") {
      const i = { selector: ev.selector, pattern: ev.pattern, active: ev.active };
      const wake = this._interestWaiters.shift();
      if (wake) wake(i); else this._interest.push(i);
      this._emit("interest", i);
    }
  }

  _onClose(ws, first) {
    if (this._ws !== ws) return; // a failed attempt; the retry loop handles it
    this._ws = null;
    const unacked = this._sentHere - this._ackedHere;
    if (unacked > 0) {
      this.lost += unacked;
      this._emit("loss", unacked);
    }
    if (!this._closed) this._reconnect(this.minBackoff);
  }

  _reconnect(delay) {
    this._timer = setTimeout(async () => {
      try {
        await this._open(true);
        this.reconnects += 1;
        this._emit("reconnected", { reconnects: this.reconnects });
      } catch {
        if (!this._closed) this._reconnect(Math.min(delay * 2, this.maxBackoff));
      }
    }, delay);
  }
}
