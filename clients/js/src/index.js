// tickcast-client: a dependency-free client for tickcast servers
// (docs/PROTOCOL.md), for browsers and Node 20+ (pass a WebSocket
// implementation, e.g. the `ws` package, where there is no global one).
//
// It keeps the merged value of every topic, checks each topic's seq (a jump
// that `conflated` does not explain is a gap: it reconnects and resumes),
// knows each topic's epoch, and reconnects with exponential backoff,
// subscribing everything again with `since` so the server sends just what
// was missed while its history holds it.

export const FIELDS = ["bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume"];

// Keys of snapshot/update events that are not fields: every other number is
// one (the seven above, and the server's extra fields by name).
const NOT_FIELDS = new Set(["seq", "ts", "conflated"]);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * The checksum of a book (docs/PROTOCOL.md, "Order books"): CRC-32 over the
 * best 10 asks then the best 10 bids, each price and size as little-endian
 * doubles. `bids` and `asks` are [price, size] pairs, best first.
 */
export function bookChecksum(bids, asks) {
  const view = new DataView(new ArrayBuffer(16));
  const bytes = new Uint8Array(view.buffer);
  let crc = 0xffffffff;
  for (const [p, s] of [...asks.slice(0, 10), ...bids.slice(0, 10)]) {
    view.setFloat64(0, p, true);
    view.setFloat64(8, s, true);
    for (const b of bytes) crc = CRC_TABLE[(crc ^ b) & 0xff] ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** A book side kept as price -> size, listed best first. */
const ladder = (side, desc) => [...side.entries()].sort((a, b) => (desc ? b[0] - a[0] : a[0] - b[0]));

/** The server refused a command; `code` is the protocol's error code. */
export class TickcastError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "TickcastError";
    this.code = code;
  }
}

const covers = (pattern, topic) =>
  pattern.endsWith("*") ? topic.startsWith(pattern.slice(0, -1)) : pattern === topic;

export class Client {
  /**
   * @param {string} url ws://host:port/ws or wss://host:port/ws
   * @param {object} [options] see index.d.ts
   */
  constructor(url, options = {}) {
    this.url = url;
    this.token = options.token;
    this.format = options.format ?? "json";
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.msgpack = options.msgpack;
    this.minBackoff = options.minBackoff ?? 100;
    this.maxBackoff = options.maxBackoff ?? 5000;
    this.pingInterval = options.pingInterval ?? 20000;
    this.commandTimeout = options.commandTimeout ?? 10000;
    this.reconnect = options.reconnect ?? true;
    // Several events per message (tickcast.json+batch): one onmessage for
    // what one server flush sends. MessagePack needs msgpack.decodeMulti.
    this.batch = options.batch ?? true;
    this.maxBytesPerSec = options.maxBytesPerSec;
    /** Whether the server agreed to batches on the current connection. */
    this.batching = false;
    /** Bytes of messages received (after the browser or ws inflated them). */
    this.bytesReceived = 0;
    if (!this.WebSocket) throw new Error("no WebSocket implementation: pass options.WebSocket");
    if (this.format === "msgpack" && !this.msgpack) {
      throw new Error('format "msgpack" needs options.msgpack = {encode, decode} (e.g. @msgpack/msgpack)');
    }
    /** @type {Map<string, Record<string, number>>} merged value of each topic */
    this.values = new Map();
    /** @type {Map<string, {seq: number, epoch?: string, stale: boolean}>} */
    this.topics = new Map();
    /** @type {Map<string, {bids: Map<number, number>, asks: Map<number, number>, depth: number}>} books of `….book` topics */
    this.books = new Map();
    this._subs = new Map(); // pattern -> {maxRate, depth} (undefined: none)
    this._pending = new Map(); // id -> {resolve, reject, timer}
    this._listeners = new Map(); // type -> Set
    this._nextId = 1;
    this._closed = false;
    this._ws = null;
    this._open = null; // resolved while connected
  }

  /** Registers a listener for one event type, or "*" for all; returns its remover. */
  on(type, listener) {
    if (!this._listeners.has(type)) this._listeners.set(type, new Set());
    this._listeners.get(type).add(listener);
    return () => this._listeners.get(type).delete(listener);
  }

  /** Opens the connection; rejects if the first attempt fails. */
  connect() {
    return this._connectOnce(true);
  }

  close() {
    this._closed = true;
    clearInterval(this._pinger);
    this._ws?.close(1000);
  }

  /** Subscribes (remembered across reconnects); resolves to the `subscribed` reply. */
  async subscribe(topics, { maxRate, depth } = {}) {
    const since = {};
    for (const [t, s] of this.topics) {
      // A book is always sent whole (it has no history).
      if (s.epoch && s.seq && !this.books.has(t) && topics.some((p) => covers(p, t))) {
        since[t] = { seq: s.seq, epoch: s.epoch };
      }
    }
    const cmd = { op: "subscribe", topics };
    if (maxRate !== undefined) cmd.max_rate = maxRate;
    if (depth !== undefined) cmd.depth = depth;
    if (Object.keys(since).length) cmd.since = since;
    // Recorded before the reply: its events may come in the same message
    // (a batch) as the reply to an earlier unsubscribe, whose clean-up
    // must see this subscription.
    const before = topics.map((t) => [t, this._subs.get(t)]);
    for (const t of topics) this._subs.set(t, { maxRate, depth });
    try {
      return await this._command(cmd);
    } catch (e) {
      // Refused: it is not a subscription. (A lost connection keeps it:
      // the reconnect subscribes again.)
      if (e instanceof TickcastError) {
        for (const [t, o] of before) o === undefined ? this._subs.delete(t) : this._subs.set(t, o);
      }
      throw e;
    }
  }

  /** A book topic's levels, best first: {bids: [[price, size]], asks}. */
  book(topic) {
    const b = this.books.get(topic);
    return b && { bids: ladder(b.bids, true), asks: ladder(b.asks, false), depth: b.depth };
  }

  async unsubscribe(topics) {
    for (const t of topics) this._subs.delete(t);
    // Values no subscription covers are dropped now (a subscribe sent next
    // must not resume them with `since`: the caller has dropped them too)
    // and again when the reply is read, for events that were in flight.
    this._forgetUncovered();
    return this._command({ op: "unsubscribe", topics }, () => this._forgetUncovered());
  }

  _covered(topic) {
    for (const p of this._subs.keys()) if (covers(p, topic)) return true;
    return false;
  }

  _forgetUncovered() {
    for (const t of [...this.values.keys(), ...this.books.keys()]) {
      if (!this._covered(t)) {
        this.values.delete(t);
        this.topics.delete(t);
        this.books.delete(t);
      }
    }
  }

  async listTopics(prefix = "") {
    return (await this._command({ op: "topics", prefix })).topics;
  }

  async ping() {
    return (await this._command({ op: "ping" })).ts;
  }

  // -- internals --------------------------------------------------------

  /** The events of one message: one, or a batch (JSON lines, MessagePack values back to back). */
  _events(data) {
    if (typeof data === "string") {
      this.bytesReceived += data.length;
      return this.batching ? data.split("\n").map((line) => JSON.parse(line)) : [JSON.parse(data)];
    }
    const bytes = new Uint8Array(data);
    this.bytesReceived += bytes.byteLength;
    return this.batching ? this.msgpack.decodeMulti(bytes) : [this.msgpack.decode(bytes)];
  }

  _emit(ev) {
    for (const type of [ev.type, "*"]) {
      for (const fn of this._listeners.get(type) ?? []) fn(ev);
    }
  }

  _connectOnce(first) {
    let url = this.url;
    const query = (k, v) => (url += (url.includes("?") ? "&" : "?") + k + "=" + encodeURIComponent(v));
    if (this.token) query("token", this.token);
    if (this.maxBytesPerSec) query("max_bytes_per_sec", this.maxBytesPerSec);
    const base = this.format === "msgpack" ? "tickcast.msgpack" : "tickcast.json";
    const canBatch = this.format === "json" || typeof this.msgpack?.decodeMulti === "function";
    // Preferred first: a server without batches picks the plain one.
    const protos = this.batch && canBatch ? [base + "+batch", base] : [base];
    return new Promise((resolve, reject) => {
      const ws = new this.WebSocket(url, protos);
      ws.binaryType = "arraybuffer";
      this._ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this.batching = ws.protocol.endsWith("+batch");
        this._open = true;
        this._backoff = this.minBackoff;
        clearInterval(this._pinger);
        // Application pings: a connection that stops answering is replaced.
        this._pinger = setInterval(() => this.ping().catch(() => ws.close(4000)), this.pingInterval);
        resolve();
      };
      ws.onmessage = (m) => {
        for (const ev of this._events(m.data)) {
          if (!this._handle(ev)) return ws.close(4001, "gap");
        }
      };
      ws.onerror = () => {};
      ws.onclose = (e) => {
        this._open = false;
        clearInterval(this._pinger);
        for (const [id, p] of this._pending) {
          clearTimeout(p.timer);
          p.reject(new Error("connection closed"));
          this._pending.delete(id);
        }
        if (!opened && first) return reject(new Error(`cannot connect to ${this.url}`));
        if (!opened) reject(new Error("reconnect failed"));
        if (this._closed || !this.reconnect) return this._emit({ type: "closed" });
        if (opened) this._emit({ type: "disconnected", reason: e.reason || `code ${e.code}` });
        this._retry();
      };
    });
  }

  /** Reconnects after the current backoff (doubling up to maxBackoff), then
   * subscribes everything again with `since`. */
  _retry() {
    const backoff = this._backoff ?? this.minBackoff;
    this._backoff = Math.min(backoff * 2, this.maxBackoff);
    setTimeout(async () => {
      if (this._closed) return;
      try {
        await this._connectOnce(false);
      } catch {
        return; // onclose schedules the next attempt
      }
      const byOptions = new Map();
      for (const [p, o] of this._subs) {
        const key = JSON.stringify(o);
        if (!byOptions.has(key)) byOptions.set(key, { options: o, patterns: [] });
        byOptions.get(key).patterns.push(p);
      }
      const recovered = [];
      try {
        for (const { options, patterns } of byOptions.values()) {
          const reply = await this.subscribe(patterns, options);
          recovered.push(...(reply.recovered ?? []));
        }
      } catch {
        return;
      }
      this._emit({ type: "reconnected", recovered });
    }, backoff * (0.5 + Math.random() / 2));
  }

  /** Sends a command; `onReply` runs as soon as its reply is read. */
  _command(cmd, onReply) {
    if (!this._open) return Promise.reject(new Error("not connected"));
    const id = this._nextId++;
    cmd.id = id;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new Error(`no reply to ${cmd.op} within ${this.commandTimeout} ms`));
      }, this.commandTimeout);
      this._pending.set(id, {
        timer,
        reject,
        resolve: (ev) => {
          if (ev.event === "error") return reject(new TickcastError(ev.code, ev.message));
          onReply?.(ev);
          resolve(ev);
        },
      });
      this._ws.send(this.format === "msgpack" ? this.msgpack.encode(cmd) : JSON.stringify(cmd));
    });
  }

  /** Applies one server event; false on a gap (the caller reconnects). */
  _handle(ev) {
    const pending = ev.id !== undefined && this._pending.get(ev.id);
    if (pending) {
      clearTimeout(pending.timer);
      this._pending.delete(ev.id);
      pending.resolve(ev);
      return true;
    }
    const topic = ev.topic;
    // Still in flight when it was unsubscribed: its state is gone, and a
    // book change could not be applied to a book no longer held.
    if (topic !== undefined && !this._covered(topic)) return true;
    const fields = {};
    for (const [k, v] of Object.entries(ev)) if (typeof v === "number" && !NOT_FIELDS.has(k)) fields[k] = v;
    switch (ev.event) {
      case "book":
      case "book_update": {
        const state = this.topics.get(topic) ?? { seq: 0, stale: false };
        const n = ev.conflated ?? 1;
        if (ev.event === "book_update" && state.seq && ev.epoch === undefined && ev.seq !== state.seq + n) {
          this._emit({ type: "gap", topic, expected: state.seq + n, got: ev.seq });
          return false;
        }
        let b = this.books.get(topic);
        if (ev.event === "book" || !b) {
          b = { bids: new Map(), asks: new Map(), depth: ev.depth };
          this.books.set(topic, b);
        }
        for (const [name, side] of [["bids", b.bids], ["asks", b.asks]]) {
          for (const [p, sz] of ev[name]) sz === 0 ? side.delete(p) : side.set(p, sz);
        }
        const view = this.book(topic);
        if (bookChecksum(view.bids, view.asks) !== ev.checksum) {
          // Our copy is wrong: reconnecting subscribes again, for a fresh book.
          this._emit({ type: "gap", topic, expected: ev.checksum, got: "checksum" });
          return false;
        }
        state.seq = ev.seq;
        if (ev.epoch !== undefined) state.epoch = ev.epoch;
        if (ev.stale !== undefined) state.stale = !!ev.stale;
        this.topics.set(topic, state);
        this._emit({ type: ev.event, topic, seq: ev.seq, conflated: n, ...view });
        break;
      }
      case "snapshot":
        this.values.set(topic, { ...fields });
        this.topics.set(topic, { seq: ev.seq, epoch: ev.epoch, stale: !!ev.stale });
        this._emit({ type: "snapshot", topic, seq: ev.seq, epoch: ev.epoch, stale: !!ev.stale, fields });
        break;
      case "update": {
        const state = this.topics.get(topic) ?? { seq: 0, stale: false };
        this.topics.set(topic, state);
        const conflated = ev.conflated ?? 1;
        if (ev.epoch !== undefined) {
          state.epoch = ev.epoch; // seq 1 of a new numbering
          this.values.set(topic, {});
        } else if (state.seq && ev.seq !== state.seq + conflated) {
          this._emit({ type: "gap", topic, expected: state.seq + conflated, got: ev.seq });
          return false;
        }
        state.seq = ev.seq;
        Object.assign(this.values.get(topic) ?? this.values.set(topic, {}).get(topic), fields);
        this._emit({ type: "update", topic, seq: ev.seq, fields, conflated, epoch: ev.epoch });
        break;
      }
      case "status": {
        const state = this.topics.get(topic) ?? { seq: 0, stale: false };
        state.stale = ev.state === "stale";
        this.topics.set(topic, state);
        this._emit({ type: "status", topic, stale: state.stale });
        break;
      }
      case "cleared":
        this.values.delete(topic);
        this.books.delete(topic);
        this.topics.set(topic, { seq: 0, stale: false });
        this._emit({ type: "cleared", topic });
        break;
      default:
        break;
    }
    return true;
  }
}
