// The JS publisher in Node against a real tickcastd: prices, books, trades,
// clears and extra fields; refusals at the call and from the server;
// interest events; both kinds of back-pressure; a reconnect after a daemon
// restart; and the CSV replay example.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import WebSocket from "ws";
import { encode, decode } from "@msgpack/msgpack";
import { Client } from "../src/index.js";
import { Publisher, InvalidUpdate, QueueFull, Refused } from "../src/publisher.js";
import { ROOT, startDaemon as startTickcastd } from "../test-support/daemon.mjs";

/** Closes `client` when the test ends, passed or failed: an open client
 * reconnects forever, and node would wait for it instead of reporting. */
function closing(t, client) {
  t.after(() => client.close());
  return client;
}

const TOKEN = "js-publisher-token";
const msgpack = { encode, decode };

function startDaemon({ port = 0, extra = "" } = {}) {
  return startTickcastd({ port, token: TOKEN, config: extra });
}

/** A subscribed client once `ok(client)` holds. */
async function held(url, topics, ok, opts = {}) {
  const c = new Client(url, { WebSocket });
  await c.connect();
  await c.subscribe(topics, opts);
  const deadline = Date.now() + 10000;
  while (!ok(c)) {
    if (Date.now() > deadline) { c.close(); throw new Error("never held: " + JSON.stringify([...c.values])); }
    await new Promise((r) => setTimeout(r, 20));
  }
  return c;
}

test("prices, books, trades, clears and extra fields arrive", async (t) => {
  const d = await startDaemon({ extra: '[fields]\nextra = ["iv"]\n' });
  const p = closing(t, new Publisher(d.publishUrl, TOKEN, { WebSocket, msgpack }));
  try {
    await p.connect();
    assert.deepEqual(p.fields, ["iv"], "from Tickcast-Fields");
    await p.publish("JP.A", { bid: 1.5, ask: 1.6, iv: 0.25 });
    await p.publish("JP.A", { last: 1.55 });
    await p.levels("JP.book", { bids: [[10, 1], [9.5, 2]], asks: [[10.5, 3]], replace: true });
    await p.levels("JP.book", { bids: [[10, 0]] });
    await p.trade("JP.trades", { price: 10.2, size: 5 });
    await p.publish("JP.GONE", { bid: 1 });
    await p.clear("JP.GONE");
    await p.flush();
    assert.equal(p.acknowledged, 7);
    assert.equal(p.lost, 0);
    const c = closing(t, await held(d.ws, ["JP.A", "JP.trades"], (c) => c.values.get("JP.A")?.last === 1.55 && c.values.has("JP.trades")));
    assert.deepEqual({ ...c.values.get("JP.A") }, { bid: 1.5, ask: 1.6, iv: 0.25, last: 1.55 });
    assert.equal(c.values.get("JP.trades").last, 10.2);
    c.close();
    const b = closing(t, await held(d.ws, ["JP.book"], (c) => c.book("JP.book"), { depth: 10 }));
    assert.deepEqual(b.book("JP.book").bids, [[9.5, 2]]);
    assert.deepEqual(b.book("JP.book").asks, [[10.5, 3]]);
    b.close();
  } finally {
    p.close();
    await d.stop();
  }
});

test("bad updates are refused at the call; server refusals come back typed", async (t) => {
  const d = await startDaemon({ extra: "[limits]\nmax_topics = 1\n" });
  const p = closing(t, new Publisher(d.publishUrl, TOKEN, { WebSocket, msgpack }));
  try {
    await p.connect();
    for (const bad of [
      () => p.publish("JP.X", { bid: NaN }),
      () => p.publish("JP.X", { ask: Infinity }),
      () => p.publish("JP.X", { gamma: 1 }),
      () => p.publish("bad topic", { bid: 1 }),
      () => p.publish("JP.X", {}),
      () => p.publish("JP.book", { bid: 1 }),
      () => p.levels("JP.X", { bids: [[1, 1]] }),
      () => p.levels("JP.book", { bids: [[1, -1]] }),
      () => p.trade("JP.X", { price: 1, size: 1 }),
    ]) {
      await assert.rejects(bad, InvalidUpdate);
    }
    assert.equal(p.queued, 0, "nothing refused was queued");
    const seen = [];
    p.on("error", (e) => seen.push(e));
    await p.publish("JP.ONE", { bid: 1 });
    await p.flush();
    await p.publish("JP.TWO", { bid: 1 }); // a second topic: over max_topics
    await assert.rejects(p.flush(), (e) => e instanceof Refused && e.code === "too_many_topics" &&
      JSON.stringify(e.indexes) === "[0]" && e.refused === 1);
    assert.equal(seen.length, 1);
  } finally {
    p.close();
    await d.stop();
  }
});

test("interest events reach the listener and the async iterator", async (t) => {
  const d = await startDaemon();
  const p = closing(t, new Publisher(d.publishUrl, TOKEN, { WebSocket, msgpack }));
  try {
    await p.connect();
    const heard = [];
    p.on("interest", (i) => heard.push(i));
    const it = p.interest();
    const c = closing(t, new Client(d.ws, { WebSocket }));
    await c.connect();
    await c.subscribe(["IN.*"]);
    assert.deepEqual((await it.next()).value, { selector: "IN.*", pattern: true, active: true });
    await c.unsubscribe(["IN.*"]);
    assert.deepEqual((await it.next()).value, { selector: "IN.*", pattern: true, active: false });
    assert.deepEqual(heard.map((h) => h.active), [true, false]);
    c.close();
  } finally {
    p.close();
    await d.stop();
  }
});

test("a full queue waits or fails fast", async (t) => {
  const d = await startDaemon();
  // A high-water mark no socket is under: nothing is written, as when the
  // server stops reading and the socket's buffer is full.
  const p = closing(t, new Publisher(d.publishUrl, TOKEN, { WebSocket, msgpack, queueSize: 2, highWater: -1 }));
  try {
    await p.connect();
    p.tryPublish("BP.A", { bid: 1 });
    p.tryPublish("BP.A", { bid: 2 });
    assert.throws(() => p.tryPublish("BP.A", { bid: 3 }), QueueFull);
    p.highWater = 1 << 20; // the server reads again
    for (let i = 0; i < 50; i++) await p.publish("BP.A", { bid: i });
    await p.flush();
    assert.equal(p.acknowledged, 52);
  } finally {
    p.close();
    await d.stop();
  }
});

test("keepLiveOnLeave leaves topics live when the publisher goes", async (t) => {
  const d = await startDaemon();
  try {
    for (const [topic, keepLiveOnLeave] of [["KL.STALE", false], ["KL.LIVE", true]]) {
      const p = closing(t, new Publisher(d.publishUrl, TOKEN, { WebSocket, msgpack, keepLiveOnLeave }));
      await p.connect();
      await p.publish(topic, { bid: 1 });
      await p.flush();
      p.close();
    }
    await new Promise((r) => setTimeout(r, 300));
    const c = closing(t, await held(d.ws, ["KL.*"], (c) => c.values.size === 2));
    assert.equal(c.topics.get("KL.STALE").stale, true);
    assert.equal(c.topics.get("KL.LIVE").stale, false);
    c.close();
  } finally {
    await d.stop();
  }
});

test("a restarted daemon is reconnected to, and losses are counted", async (t) => {
  let d = await startDaemon();
  const port = d.port;
  const p = closing(t, new Publisher(d.publishUrl, TOKEN, { WebSocket, msgpack }));
  const losses = [];
  p.on("loss", (n) => losses.push(n));
  try {
    await p.connect();
    await p.publish("RC.A", { bid: 1 });
    await p.flush();
    // A burst in flight when the daemon dies without a goodbye.
    for (let i = 0; i < 3000; i++) await p.publish("RC.B", { bid: i });
    await d.stop("SIGKILL");
    d = await startDaemon({ port });
    const deadline = Date.now() + 10000;
    while (!p.reconnects && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(p.reconnects >= 1);
    await p.publish("RC.A", { bid: 2 });
    await p.flush();
    const c = closing(t, await held(d.ws, ["RC.A"], (c) => c.values.get("RC.A")?.bid === 2));
    c.close();
    // Honest: every update acknowledged by one of the daemons or counted
    // lost, none twice.
    assert.equal(p.lost, losses.reduce((a, b) => a + b, 0));
    assert.equal(p.acknowledged + p.lost, p.queued);
  } finally {
    p.close();
    await d.stop();
  }
});

test("the CSV replay example publishes every tick", async (t) => {
  const d = await startDaemon();
  try {
    const csv = join(ROOT, "clients/data/ticks.csv");
    const out = execFileSync("node", [join(ROOT, "clients/js/examples/replay_csv.mjs"), d.publishUrl, TOKEN, csv],
      { encoding: "utf8", cwd: join(ROOT, "clients/js") });
    const rows = readFileSync(csv, "utf8").trim().split("\n").slice(1);
    assert.match(out, new RegExp(`replayed ${rows.length} updates: ${rows.length} acknowledged, 0 lost`));
    const last = new Map();
    for (const r of rows) {
      const [, topic, kind, bid] = r.split(",");
      if (kind === "quote") last.set(topic, Number(bid));
    }
    const c = closing(t, await held(d.ws, [...last.keys()], (c) => [...last].every(([t, bid]) => c.values.get(t)?.bid === bid)));
    c.close();
  } finally {
    await d.stop();
  }
});

test("batches and compression: many events per message, MessagePack too, and a byte budget", async (t) => {
  const { decodeMulti } = await import("@msgpack/msgpack");
  const d = await startDaemon();
  try {
    const p = new Publisher(d.publishUrl, TOKEN, { WebSocket, msgpack });
    t.after(() => p.close());
    await p.connect();
    const clients = [
      new Client(d.ws, { WebSocket }),
      new Client(d.ws, { WebSocket, format: "msgpack", msgpack: { encode, decode, decodeMulti } }),
      new Client(d.ws, { WebSocket, batch: false }),
      new Client(d.ws, { WebSocket, maxBytesPerSec: 4000 }),
    ];
    for (const c of clients) {
      closing(t, c);
      await c.connect();
      await c.subscribe(["JB.*"]);
    }
    assert.deepEqual(clients.map((c) => c.batching), [true, true, false, true]);
    const messages = clients.map(() => 0);
    clients.forEach((c, i) => {
      const inner = c._ws.onmessage;
      c._ws.onmessage = (m) => { messages[i] += 1; inner(m); };
    });
    const N = 400;
    for (let i = 1; i <= N; i++) {
      for (const topic of ["JB.A", "JB.B", "JB.C"]) await p.publish(topic, { bid: i, ask: i + 0.5 });
    }
    await p.flush();
    const deadline = Date.now() + 15000;
    const done = (c) => ["JB.A", "JB.B", "JB.C"].every((k) => c.values.get(k)?.bid === N && c.values.get(k)?.ask === N + 0.5);
    while (!clients.every(done)) {
      if (Date.now() > deadline) throw new Error("values never arrived: " + JSON.stringify(clients.map((c) => [...c.values])));
      await new Promise((r) => setTimeout(r, 20));
    }
    // Batched sessions took fewer messages than events; the plain one one each.
    assert.ok(messages[0] < 3 * N, `json batches: ${messages[0]} messages`);
    assert.ok(messages[1] < 3 * N, `msgpack batches: ${messages[1]} messages`);
    assert.ok(messages[2] >= 3 * N, `plain: ${messages[2]} messages`);
    assert.ok(clients[3].bytesReceived < clients[2].bytesReceived, "the budgeted client received fewer bytes");
    // Node's ws offers permessage-deflate, as browsers do.
    const text = await (await fetch(`http://127.0.0.1:${d.port}/metrics`)).text();
    const sessions = Number(text.match(/^tickcast_deflate_sessions_total (\d+)$/m)[1]);
    assert.ok(sessions >= 4, `${sessions} sessions negotiated permessage-deflate`);
  } finally {
    await d.stop();
  }
});
