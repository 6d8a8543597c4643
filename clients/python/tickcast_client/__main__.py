"""A live view: ``python -m tickcast_client URL [TOPICS...]``.

Redraws a table of every topic (fields, seq, stale) four times a second
(printed plainly once a second when the output is not a terminal);
``--json`` prints one line per event instead; ``--for N`` stops after N s.
Piped into ``head``, it stops quietly when the pipe closes.
"""

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict

from . import Client, FIELDS


def _json_line(ev) -> str:
    """One event as a JSON line. ``conflated`` appears only when an event
    stands for more than one update, as on the wire (docs/PROTOCOL.md)."""
    d = {"type": type(ev).__name__, **asdict(ev)}
    if d.get("conflated") == 1:
        del d["conflated"]
    return json.dumps(d)


def _table(url: str, client: Client, terminal: bool) -> str:
    lines = [f"tickcast  {url}  {len(client.values)} topics", ""]
    lines.append(f"{'TOPIC':<16}" + "".join(f"{f.upper():>14}" for f in FIELDS[:3])
                 + f"{'VOLUME':>14}{'SEQ':>10}  STATE")
    for topic in sorted(client.values):
        v, state = client.values[topic], client.topics.get(topic)
        cells = "".join(f"{v[f]:>14}" if f in v else " " * 14 for f in ("bid", "ask", "last", "volume"))
        stale = "stale" if state and state.stale else ""
        lines.append(f"{topic:<16}{cells}{state.seq if state else 0:>10}  {stale}")
    if terminal:
        return "\x1b[H\x1b[2J" + "\n".join(lines) + "\n"
    return "\n".join(lines) + "\n\n"


async def _main(args) -> int:
    async with Client(args.url, token=args.token, ca_file=args.ca) as client:
        await client.subscribe(args.topics, max_rate=args.max_rate)
        deadline = time.monotonic() + args.seconds if args.seconds else None
        last_draw = 0.0
        terminal = sys.stdout.isatty()
        every = 0.25 if terminal else 1.0
        while deadline is None or time.monotonic() < deadline:
            try:
                ev = await client.next_event(timeout=0.25)
                if args.json:
                    print(_json_line(ev), flush=True)
            except asyncio.TimeoutError:
                pass
            if not args.json and time.monotonic() - last_draw >= every:
                last_draw = time.monotonic()
                sys.stdout.write(_table(args.url, client, terminal))
                sys.stdout.flush()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m tickcast_client", description=__doc__)
    p.add_argument("url", help="ws://host:port/ws or wss://host:port/ws")
    p.add_argument("topics", nargs="*", default=["*"], help="topics and patterns (default: *)")
    p.add_argument("--max-rate", type=float, default=None, help="events per topic per second")
    p.add_argument("--token", default=None, help="subscriber token")
    p.add_argument("--ca", default=None, metavar="FILE",
                   help="for wss://: PEM file of the authorities to trust (default: the system's)")
    p.add_argument("--json", action="store_true", help="one JSON line per event")
    p.add_argument("--for", dest="seconds", type=float, default=None, help="stop after N seconds")
    args = p.parse_args()
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        # The reader went away (| head): stop quietly. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
