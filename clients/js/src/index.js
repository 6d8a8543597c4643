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
    if (!this.WebSocket) throw new Error("no WebSocket implementation: pass options.WebSocket");
    if (this.format === "msgpack" && !this.msgpack) {
      throw new Error('format "msgpack" needs options.msgpack = {encode, decode} (e.g. @msgpack/msgpack)');
    }
    /** @type {Map<string, Record<string, number>>} merged value of each topic */
    this.values = new Map();
    /** @type {Map<string, {seq: number, epoch?: string, stale: boolean}>} */
    this.topics = new Map();
    this._subs = new Map(); // pattern -> maxRate (undefined: none)
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
  async subscribe(topics, { maxRate } = {}) {
    const since = {};
    for (const [t, s] of this.topics) {
      if (s.epoch && s.seq && topics.some((p) => covers(p, t))) since[t] = { seq: s.seq, epoch: s.epoch };
    }
    const cmd = { op: "subscribe", topics };
    if (maxRate !== undefined) cmd.max_rate = maxRate;
    if (Object.keys(since).length) cmd.since = since;
    const reply = await this._command(cmd);
    for (const t of topics) this._subs.set(t, maxRate);
    return reply;
  }

  async unsubscribe(topics) {
    const reply = await this._command({ op: "unsubscribe", topics });
    for (const t of topics) this._subs.delete(t);
    for (const t of [...this.values.keys()]) {
      if (![...this._subs.keys()].some((p) => covers(p, t))) {
        this.values.delete(t);
        this.topics.delete(t);
      }
    }
    return reply;
  }

  async listTopics(prefix = "") {
    return (await this._command({ op: "topics", prefix })).topics;
  }

  async ping() {
    return (await this._command({ op: "ping" })).ts;
  }

  // -- internals --------------------------------------------------------

  _emit(ev) {
    for (const type of [ev.type, "*"]) {
      for (const fn of this._listeners.get(type) ?? []) fn(ev);
    }
  }

  _connectOnce(first) {
    let url = this.url;
    if (this.token) url += (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(this.token);
    const proto = this.format === "msgpack" ? "tickcast.msgpack" : "tickcast.json";
    return new Promise((resolve, reject) => {
      const ws = new this.WebSocket(url, proto);
      ws.binaryType = "arraybuffer";
      this._ws = ws;
      let opened = false;
      ws.onopen = () => {
        opened = true;
        this._open = true;
        this._backoff = this.minBackoff;
        clearInterval(this._pinger);
        // Application pings: a connection that stops answering is replaced.
        this._pinger = setInterval(() => this.ping().catch(() => ws.close(4000)), this.pingInterval);
        resolve();
      };
      ws.onmessage = (m) => {
        const ev = typeof m.data === "string" ? JSON.parse(m.data) : this.msgpack.decode(new Uint8Array(m.data));
        if (!this._handle(ev)) ws.close(4001, "gap");
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
      const byRate = new Map();
      for (const [p, r] of this._subs) {
        if (!byRate.has(r)) byRate.set(r, []);
        byRate.get(r).push(p);
      }
      const recovered = [];
      try {
        for (const [rate, patterns] of byRate) {
          const reply = await this.subscribe(patterns, rate === undefined ? {} : { maxRate: rate });
          recovered.push(...(reply.recovered ?? []));
        }
      } catch {
        return;
      }
      this._emit({ type: "reconnected", recovered });
    }, backoff * (0.5 + Math.random() / 2));
  }

  _command(cmd) {
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
        resolve: (ev) => (ev.event === "error" ? reject(new TickcastError(ev.code, ev.message)) : resolve(ev)),
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
    const fields = {};
    for (const f of FIELDS) if (f in ev) fields[f] = ev[f];
    switch (ev.event) {
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
        this.topics.set(topic, { seq: 0, stale: false });
        this._emit({ type: "cleared", topic });
        break;
      default:
        break;
    }
    return true;
  }
}
