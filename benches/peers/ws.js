// Node `ws` peer: `node ws.js --port 9000 --rate 10000 --topics 100`
// Each update is framed once (WebSocket.Sender.frame) and the same frame
// buffers are written to every subscriber, the fastest broadcast ws allows.
"use strict";
const http = require("http");
const { WebSocketServer, WebSocket } = require("ws");
const { startSchedule, parseArgs } = require("./schedule");

const a = parseArgs();
const subs = new Map(); // topic -> Set<ws>
let subscribed = 0;
const server = http.createServer();
const wss = new WebSocketServer({ server, path: "/ws", perMessageDeflate: false });
wss.on("connection", (ws) => {
  ws._socket.setNoDelay(true);
  const mine = [];
  ws.on("message", (data) => {
    const cmd = JSON.parse(data.toString());
    if (cmd.op === "subscribe") {
      for (const t of cmd.topics) {
        if (!subs.has(t)) subs.set(t, new Set());
        subs.get(t).add(ws);
        mine.push(t);
      }
      subscribed += 1;
      ws.send(JSON.stringify({ event: "subscribed", id: cmd.id, topics: cmd.topics }));
    }
  });
  ws.on("close", () => {
    for (const t of mine) subs.get(t)?.delete(ws);
  });
});
server.listen(a.port, "127.0.0.1", () => {
  console.log("listening on 127.0.0.1:" + a.port);
  startSchedule(a.rate, a.topics, (topic, msg) => {
    const set = subs.get(topic);
    if (!set || set.size === 0) return;
    const frame = WebSocket.Sender.frame(Buffer.from(msg), {
      fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false,
    });
    for (const ws of set) {
      if (ws.readyState === WebSocket.OPEN) ws._sender.sendFrame(frame);
    }
  }, () => subscribed >= a["start-after"]);
});
