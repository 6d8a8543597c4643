#!/usr/bin/env python3
"""Memory under an attack of subscribers that never read (issue 25).

Starts a release tickcastd with the demo feed, publishes TOPICS topics eight
times over /publish (so the ingest rings and histories reach their working
size), then opens ATTACKERS subscribers of "*" that never read (4 KiB
receive buffers), samples RSS and /metrics' memory estimate for HOLD
seconds, closes the attackers and samples RSS for 15 s more. Prints, per
sample, RSS, what connections hold, the estimate, and RSS growth over
estimate growth; at the end RSS before, at the peak and after.

    cargo build --release --bin tickcastd
    benches/memory_attack.py [TOPICS] [ATTACKERS] [HOLD] [DEMO_RATE]
    (defaults 55000 200 60 20000; TICKCASTD=path runs another build;
    run with the Python client importable,
    e.g. PYTHONPATH=clients/python target/pyenv/bin/python ...)
Loopback only, bounded in time.
"""
import asyncio, json, os, socket, struct, subprocess, sys, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from tickcast_client import Publisher  # noqa: E402

TOKEN = "memory-attack-token"
args = [int(a) for a in sys.argv[1:]]
topics, attackers, hold, rate = (args + [55000, 200, 60, 20000][len(args):])[:4]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


port = free_port()
daemon = subprocess.Popen([os.environ.get("TICKCASTD", os.path.join(ROOT, "target", "release", "tickcastd")),
                           "--listen", f"127.0.0.1:{port}", "--demo", "--demo-rate", str(rate),
                           "--publisher-token", TOKEN],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rss():
    with open(f"/proc/{daemon.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024


def metrics():
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    held = estimate = 0.0
    for line in page.splitlines():
        if line.startswith("tickcast_outbound_queued_bytes "):
            held = float(line.split()[1])
        if line.startswith("tickcast_memory_estimated_bytes{"):
            estimate += float(line.split()[1])
    return held, estimate


async def publish():
    async with Publisher(f"ws://127.0.0.1:{port}/publish", TOKEN, keep_live_on_leave=True) as p:
        for r in range(8):
            for i in range(topics):
                await p.publish(f"T.{i:06d}", bid=100.0 + i + r, ask=100.5 + i, last=100.25, volume=1e6)
        await p.flush()


def masked(obj):
    data = json.dumps(obj).encode()
    mask = os.urandom(4)
    head = bytes([0x81]) + (bytes([0x80 | len(data)]) if len(data) < 126
                            else bytes([0x80 | 126]) + struct.pack(">H", len(data)))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def attacker():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    s.recv(200)
    s.sendall(masked({"op": "subscribe", "topics": ["*"]}))
    return s


try:
    for _ in range(100):
        try:
            metrics()
            break
        except OSError:
            time.sleep(0.05)
    asyncio.run(publish())
    time.sleep(1)
    t0 = time.time()
    base, (_, base_est) = rss(), metrics()

    def sample(tag):
        held, est = metrics()
        r = rss()
        ratio = (r - base) / (est - base_est) if est - base_est > 1e6 else float("nan")
        print(f"{time.time() - t0:6.1f}s {tag:7s} rss {r / 1e6:7.1f} MB  held {held / 1e6:7.1f} MB  "
              f"estimate {est / 1e6:7.1f} MB  rss growth/estimate growth {ratio:5.2f}", flush=True)
        return r

    sample("before")
    socks = [attacker() for _ in range(attackers)]
    peak, end = 0, time.time() + hold
    while time.time() < end:
        time.sleep(2)
        peak = max(peak, sample("attack"))
    for s in socks:
        s.close()
    end = time.time() + 15
    while time.time() < end:
        time.sleep(1)
        after = sample("after")
    print(f"rss before {base / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB, 15 s after {after / 1e6:.1f} MB "
          f"({after / base:.2f}x before)")
finally:
    daemon.terminate()
    daemon.wait()
