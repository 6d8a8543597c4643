// A feed handler that replays a CSV of ticks into tickcast over /publish.
//   node examples/replay_csv.mjs ws://127.0.0.1:8080/publish TOKEN ../data/ticks.csv [speed]
// Rows: ts_ms,topic,kind,bid,ask,last,size; "quote" publishes bid and ask,
// "trade" a trade on a ….trades topic. speed 0 (default): as fast as possible.
import { readFileSync } from "node:fs";
import WebSocket from "ws";
import { encode, decode } from "@msgpack/msgpack";
import { Publisher } from "../src/publisher.js";

const [url, token, path, speedArg = "0"] = process.argv.slice(2);
const speed = Number(speedArg);
const [header, ...rows] = readFileSync(path, "utf8").trim().split("\n");
const cols = header.split(",");
// Timestamps are nanoseconds, past 2^53: BigInt, packed as 64-bit integers.
const msgpack = { encode: (v) => encode(v, { useBigInt64: true }), decode };
const pub = new Publisher(url, token, { WebSocket, msgpack });
await pub.connect();
let previous;
for (const line of rows) {
  const r = Object.fromEntries(line.split(",").map((v, i) => [cols[i], v]));
  const ts = Number(r.ts_ms);
  if (speed > 0 && previous !== undefined) await new Promise((res) => setTimeout(res, (ts - previous) / speed));
  previous = ts;
  if (r.kind === "trade") await pub.trade(r.topic, { price: Number(r.last), size: Number(r.size), ts: BigInt(ts) * 1000000n });
  else await pub.publish(r.topic, { bid: Number(r.bid), ask: Number(r.ask) }, { ts: BigInt(ts) * 1000000n });
}
await pub.flush();
console.log(`replayed ${pub.queued} updates: ${pub.acknowledged} acknowledged, ${pub.lost} lost`);
pub.close();
