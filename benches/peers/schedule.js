// The publish schedule shared by the peer servers, the same as
// examples/bench_server.rs: RATE updates/s round-robin over TOPICS topics
// (B.0000, B.0001, ...), each stamped with its scheduled time in ns since the
// epoch, published in small bursts every millisecond. Open-loop: if the event
// loop falls behind, the backlog is published late with its scheduled stamps.
"use strict";

// Publishing starts once `ready()` (the number of subscribed connections
// reached --start-after), so every system is measured on a settled topology.
function startSchedule(rate, topics, publish, ready = () => true) {
  if (!(rate > 0)) return;
  if (!ready()) {
    setTimeout(() => startSchedule(rate, topics, publish, ready), 10);
    return;
  }
  const names = Array.from({ length: topics }, (_, i) => "B." + String(i).padStart(4, "0"));
  // Anchor the monotonic clock to the system clock at a millisecond edge of
  // Date.now(): performance.timeOrigin can be off by a millisecond or more,
  // which would skew every latency the load generator computes.
  const d0 = Date.now();
  let d1;
  while ((d1 = Date.now()) === d0) {}
  const t0 = performance.now();
  const epoch0Ms = d1;
  let sent = 0;
  let seq = 0;
  setInterval(() => {
    // Update n is due at n / rate: at time t, updates 0..=t * rate are. (It
    // used to be one fewer, so every update went out one interval after its
    // stamp and every system's latency read 1 / rate too high.)
    const due = Math.floor(((performance.now() - t0) / 1000) * rate) + 1;
    while (sent < due) {
      const scheduledNs = Math.round((epoch0Ms + (sent * 1000) / rate) * 1e6);
      const topic = names[sent % topics];
      seq += 1;
      const px = 100 + (seq % 1000) * 0.01;
      // Same shape and field order as tickcast's update event.
      const msg = `{"event":"update","topic":"${topic}","seq":${seq},"ts":${scheduledNs},` +
        `"bid":${px.toFixed(2)},"ask":${(px + 0.01).toFixed(2)},"bid_size":5.0,"ask_size":7.0}`;
      publish(topic, msg);
      sent += 1;
    }
  }, 1);
}

function parseArgs() {
  const a = { port: 9000, rate: 10000, topics: 100, "start-after": 0 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    a[argv[i].replace(/^--/, "")] = Number(argv[i + 1]);
  }
  return a;
}

module.exports = { startSchedule, parseArgs };
