// The JS client in Node against a real tickcastd (target/debug, or TICKCASTD),
// published into with the `tickcast pub` command (or TICKCAST).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { encode, decode } from "@msgpack/msgpack";
import { Client, TickcastError, bookChecksum } from "../src/index.js";
import { binary, startDaemon as startTickcastd } from "../test-support/daemon.mjs";

/** Closes `client` when the test ends, passed or failed: an open client
 * reconnects forever, and node would wait for it instead of reporting. */
function closing(t, client) {
  t.after(() => client.close());
  return client;
}

const TOKEN = "js-client-token";

function startDaemon(port = 0) {
  return startTickcastd({ port, token: TOKEN, config: "[limits]\nhistory_len = 64\n" });
}

/** Waits until the count of topics with a value (from /metrics) is above
 * zero and unchanged over 100 ms: the demo feed's first round is in. */
async function demoTopicsSettled(port) {
  const deadline = Date.now() + 10000;
  let last = -1;
  for (;;) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const m = text.match(/^tickcast_topics (\d+)$/m);
    const n = m ? Number(m[1]) : 0;
    if (n > 0 && n === last) return;
    if (Date.now() > deadline) throw new Error(`demo topics never settled (${n})`);
    last = n;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The next event of this type (for this topic), skipping others. */
function next(client, type, topic, ms = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { off(); reject(new Error(`no ${type} ${topic ?? ""} within ${ms} ms`)); }, ms);
    const off = client.on(type, (ev) => {
      if (topic === undefined || ev.topic === topic) { clearTimeout(t); off(); resolve(ev); }
    });
  });
}

for (const format of ["json", "msgpack"]) {
  test(`snapshot then merged updates (${format})`, async (t) => {
    const d = await startDaemon();
    try {
      d.publish("JS.A", { bid: 1.5 });
      const c = closing(t, new Client(d.ws, { WebSocket, format, msgpack: { encode, decode } }));
      await c.connect();
      const snap = next(c, "snapshot", "JS.A");
      const ack = await c.subscribe(["JS.*"]);
      assert.deepEqual(ack.topics, ["JS.*"]);
      const s = await snap;
      assert.equal(s.seq, 1);
      assert.equal(s.epoch.length, 8);
      assert.deepEqual(s.fields, { bid: 1.5 });
      const up = next(c, "update", "JS.A");
      d.publish("JS.A", { ask: 1.75 });
      const u = await up;
      assert.equal(u.seq, 2);
      assert.deepEqual(c.values.get("JS.A"), { bid: 1.5, ask: 1.75 });
      await assert.rejects(c.subscribe(["bad topic"]), (e) => e instanceof TickcastError && e.code === "bad_topic");
      assert.deepEqual(await c.listTopics("JS."), ["JS.A"]);
      assert.ok((await c.ping()) > 1.7e18);
      c.close();
    } finally {
      await d.stop();
    }
  });
}

test("reconnects after the daemon restarts and sees the new epoch", async (t) => {
  let d = await startDaemon();
  const port = d.port;
  try {
    d.publish("JS.R", { bid: 1 });
    const c = closing(t, new Client(d.ws, { WebSocket, minBackoff: 50, maxBackoff: 500 }));
    await c.connect();
    const snap = next(c, "snapshot", "JS.R");
    await c.subscribe(["JS.*"]);
    const first = await snap;
    const gone = next(c, "disconnected");
    await d.stop();
    await gone;
    const back = next(c, "reconnected");
    d = await startDaemon(port);
    await back;
    const up = next(c, "update", "JS.R");
    d.publish("JS.R", { ask: 9 });
    const u = await up;
    assert.equal(u.seq, 1);
    assert.ok(u.epoch && u.epoch !== first.epoch, "a new epoch");
    assert.deepEqual(c.values.get("JS.R"), { ask: 9 }, "the old value is dropped");
    c.close();
  } finally {
    await d.stop();
  }
});

test("stale, live and cleared topics", async (t) => {
  const d = await startDaemon();
  try {
    d.publish("JS.S", { bid: 1 });
    const c = closing(t, new Client(d.ws, { WebSocket }));
    await c.connect();
    const snap = next(c, "snapshot", "JS.S");
    await c.subscribe(["JS.S"], { maxRate: 50 });
    // The one-shot publisher has left: the topic is stale until its next update.
    assert.equal((await snap).stale, true);
    const events = [];
    const off = c.on("*", (ev) => events.push(ev.type + (ev.type === "status" ? (ev.stale ? ":stale" : ":live") : "")));
    const cleared = next(c, "cleared", "JS.S");
    d.publish("JS.S", { bid: 2 });
    d.publish("JS.S", {}, ["--clear"]);
    await cleared;
    const restarted = next(c, "update", "JS.S");
    d.publish("JS.S", { last: 3 });
    const r = await restarted;
    off();
    assert.deepEqual(events.slice(0, 3), ["status:live", "update", "status:stale"]);
    assert.ok(events.includes("cleared"));
    assert.equal(r.seq, 1);
    assert.deepEqual(c.values.get("JS.S"), { last: 3 });
    c.close();
  } finally {
    await d.stop();
  }
});

test("a connection that never opens is refused", async (t) => {
  const c = closing(t, new Client("ws://127.0.0.1:1/ws", { WebSocket }));
  await assert.rejects(c.connect());
  assert.throws(() => new Client("ws://x/ws", { WebSocket, format: "msgpack" }), /msgpack/);
});

import { createServer, connect as tcpConnect } from "node:net";

/** A TCP proxy that drops, once, the server's update frame with this seq:
 * a real gap on the client's wire. */
function droppingProxy(upstreamPort, dropSeq) {
  let dropped = false;
  const server = createServer((client) => {
    const up = tcpConnect(upstreamPort, "127.0.0.1");
    client.pipe(up);
    let buf = Buffer.alloc(0);
    let headDone = false;
    up.on("data", (data) => {
      buf = Buffer.concat([buf, data]);
      if (!headDone) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        client.write(buf.subarray(0, end + 4));
        buf = buf.subarray(end + 4);
        headDone = true;
      }
      for (;;) {
        if (buf.length < 2) break;
        let n = buf[1] & 0x7f, hdr = 2;
        if (n === 126) { if (buf.length < 4) break; n = buf.readUInt16BE(2); hdr = 4; }
        else if (n === 127) { if (buf.length < 10) break; n = Number(buf.readBigUInt64BE(2)); hdr = 10; }
        if (buf.length < hdr + n) break;
        const frame = buf.subarray(0, hdr + n);
        buf = buf.subarray(hdr + n);
        const payload = frame.subarray(hdr).toString();
        // A batch (one event per line) is dropped whole when it holds the update.
        const hit = payload.split("\n").some((l) => l.startsWith('{"event":"update"') && l.includes(`"seq":${dropSeq},`));
        if (!dropped && hit) {
          dropped = true;
          continue;
        }
        client.write(frame);
      }
    });
    const end = () => { client.destroy(); up.destroy(); };
    up.on("close", end); client.on("close", end); up.on("error", end); client.on("error", end);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

test("a gap is detected and recovered from the server's history", async (t) => {
  const d = await startDaemon();
  const proxy = await droppingProxy(d.port, 3);
  try {
    d.publish("JS.G", { bid: 1 });
    const c = closing(t, new Client(`ws://127.0.0.1:${proxy.address().port}/ws`, { WebSocket, minBackoff: 50 }));
    await c.connect();
    const snap = next(c, "snapshot", "JS.G");
    await c.subscribe(["JS.G"]);
    await snap;
    const gap = next(c, "gap", "JS.G");
    const back = next(c, "reconnected");
    for (let i = 2; i <= 5; i++) d.publish("JS.G", { bid: i });
    const g = await gap;
    assert.deepEqual([g.expected, g.got], [3, 4]);
    assert.deepEqual((await back).recovered, ["JS.G"], "resumed from history, no snapshot");
    while (c.topics.get("JS.G").seq < 5) await next(c, "update", "JS.G");
    assert.deepEqual(c.values.get("JS.G"), { bid: 5 });
    c.close();
  } finally {
    proxy.close();
    await d.stop();
  }
});

test("bookChecksum is the documented CRC-32 (docs/PROTOCOL.md's example)", () => {
  const asks = [[64001.0, 0.7], [64002.5, 2.0]];
  assert.equal(bookChecksum([[64000.5, 1.2], [64000.0, 3.0]], asks), 936822193);
  assert.equal(bookChecksum([[64000.0, 3.0], [63990.0, 4.0]], asks), 3127965468);
});

test("order books: depth, book then book_update, every checksum verified", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tickcast-js-book-"));
  const proc = spawn(binary("TICKCASTD", "tickcastd"), ["--listen", "127.0.0.1:0", "--demo", "--demo-rate", "400"], {
    stdio: ["ignore", "ignore", "pipe"],
    cwd: dir,
  });
  const lines = createInterface({ input: proc.stderr });
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("tickcastd did not start")), 10000);
    lines.on("line", (l) => {
      const m = l.match(/ listening on 127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
  });
  // The demo's first round gives every topic a value; subscribe after it,
  // or the book starts with a book_update instead of its snapshot. (Its
  // topics may be numbered by different routers, in any order.)
  await demoTopicsSettled(port);
  const c = closing(t, new Client(`ws://127.0.0.1:${port}/ws`, { WebSocket }));
  try {
    await c.connect();
    let gaps = 0;
    c.on("gap", () => { gaps += 1; });
    const first = next(c, "book", "BTC-USD.book");
    await c.subscribe(["BTC-USD.book"], { depth: 10 });
    const b = await first;
    assert.equal(b.depth, 10);
    assert.equal(b.bids.length, 10, "cut to the depth (the demo book has 25 a side)");
    assert.ok(b.bids[0][0] < b.asks[0][0], "not crossed");
    for (let i = 0; i < 5; i++) {
      const u = await next(c, "book_update", "BTC-USD.book");
      assert.equal(u.bids.length, 10);
      assert.ok(u.bids.every(([p], k) => k === 0 || p < u.bids[k - 1][0]), "best first");
    }
    assert.equal(gaps, 0, "every checksum matched the copy");
    assert.deepEqual(c.book("BTC-USD.book").asks.length, 10);
  } finally {
    // Closed whatever happened: a failed test must not leave node waiting.
    c.close();
    await new Promise((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.on("exit", resolve);
      proc.kill("SIGTERM");
    });
  }
});
