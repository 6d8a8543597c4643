// Publisher for the nats-server peer in benches/fanout.sh:
//   node nats_pub.js --port 4222 --monitor 8222 --rate 10000 --topics 100 --start-after 10000
// nats-server has no feed of its own, so this process runs the shared
// schedule (schedule.js: same topics, payload and scheduled-time stamps as
// tickcast's bench_server and the Node peers) and publishes each event with
// NATS's text protocol over TCP (`PUB <subject> <bytes>\r\n<payload>\r\n`).
// fanout.sh pins it to the server's core and counts its CPU with the server's,
// as the other systems publish from inside the server process.
// It starts once the server's monitoring endpoint (/varz) reports
// --start-after subscriptions, so NATS too is measured on a settled topology.
"use strict";
const net = require("net");
const http = require("http");
const { startSchedule, parseArgs } = require("./schedule");

const a = parseArgs();
let subscriptions = 0;

function pollVarz() {
  http
    .get({ host: "127.0.0.1", port: a.monitor, path: "/varz" }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        try {
          subscriptions = JSON.parse(body).subscriptions;
        } catch (_) {}
        if (subscriptions < a["start-after"]) setTimeout(pollVarz, 50);
      });
    })
    .on("error", () => setTimeout(pollVarz, 50));
}

const sock = net.connect({ host: "127.0.0.1", port: a.port }, () => {
  sock.setNoDelay(true);
  sock.write('CONNECT {"verbose":false,"pedantic":false,"protocol":1}\r\n');
  pollVarz();
  // One write per schedule tick: PUBs are queued as the schedule calls
  // publish() and written together once the tick's burst is done.
  let queued = [];
  const flush = () => {
    sock.write(queued.join(""));
    queued = [];
  };
  startSchedule(
    a.rate,
    a.topics,
    (topic, msg) => {
      if (queued.length === 0) process.nextTick(flush);
      queued.push(`PUB ${topic} ${Buffer.byteLength(msg)}\r\n${msg}\r\n`);
    },
    () => subscriptions >= a["start-after"],
  );
});
// The server PINGs idle clients and drops those that never answer.
sock.on("data", (d) => {
  if (d.includes("PING\r\n")) sock.write("PONG\r\n");
  const err = d.toString().match(/-ERR[^\r]*/);
  if (err) console.error("nats:", err[0]);
});
sock.on("error", (e) => {
  console.error("nats publisher:", e.message);
  process.exit(1);
});
