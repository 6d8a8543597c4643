// uWebSockets.js pub/sub peer: `node uws.js --port 9000 --rate 10000 --topics 100`
// Speaks the subset of tickcast's protocol the load generator uses:
// {"op":"subscribe","topics":[...]} -> uWS topic subscriptions; updates go out
// with app.publish(), uWS's own fan-out (one frame shared by all subscribers).
"use strict";
const uWS = require("uwebsockets");
const { startSchedule, parseArgs } = require("./schedule");

const a = parseArgs();
let subscribed = 0;
// `--compress 1`: permessage-deflate with uWS's shared compressor, each
// published message compressed once for every subscriber (as tickcast's
// shared mode).
const compress = a.compress === 1;
const app = uWS.App().ws("/ws", {
  compression: compress ? uWS.SHARED_COMPRESSOR : uWS.DISABLED,
  maxPayloadLength: 64 * 1024,
  // Deep enough that a loaded loopback subscriber is not skipped as "slow".
  maxBackpressure: 64 * 1024 * 1024,
  idleTimeout: 0,
  message: (ws, message) => {
    const cmd = JSON.parse(Buffer.from(message).toString());
    if (cmd.op === "subscribe") {
      for (const t of cmd.topics) ws.subscribe(t);
      subscribed += 1;
      ws.send(JSON.stringify({ event: "subscribed", id: cmd.id, topics: cmd.topics }));
    }
  },
});
app.listen("127.0.0.1", a.port, (token) => {
  if (!token) {
    console.error("cannot listen on", a.port);
    process.exit(1);
  }
  console.log("listening on 127.0.0.1:" + a.port);
  startSchedule(a.rate, a.topics, (topic, msg) => app.publish(topic, msg, false, compress),
    () => subscribed >= a["start-after"]);
});
