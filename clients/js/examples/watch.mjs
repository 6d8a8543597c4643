// Prints every event with the merged value: node examples/watch.mjs ws://127.0.0.1:8080/ws
import WebSocket from "ws";
import { Client } from "../src/index.js";

const c = new Client(process.argv[2] ?? "ws://127.0.0.1:8080/ws", { WebSocket });
c.on("*", (ev) => console.log(ev.type, ev.topic ?? "", ev.topic ? JSON.stringify(c.values.get(ev.topic)) : ""));
await c.connect();
await c.subscribe(["BTC-USD", "FX.*"], { maxRate: 4 });
