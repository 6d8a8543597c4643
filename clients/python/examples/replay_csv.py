"""A feed handler that replays a CSV of ticks into tickcast over /publish.

    python examples/replay_csv.py ws://127.0.0.1:8080/publish TOKEN ../data/ticks.csv [--speed 10]

Each row: ts_ms,topic,kind,bid,ask,last,size; kind "quote" publishes bid and
ask, "trade" a trade (last and last_size) on a ….trades topic. Rows go out
at their recorded pace divided by --speed (0: as fast as possible). It
flushes at the end and says how many updates were acknowledged and lost.
"""

import argparse
import asyncio
import csv

from tickcast_client import Publisher


async def replay(url: str, token: str, path: str, speed: float) -> None:
    async with Publisher(url, token) as pub:
        previous = None
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                ts = int(row["ts_ms"])
                if speed > 0 and previous is not None:
                    await asyncio.sleep((ts - previous) / 1000 / speed)
                previous = ts
                if row["kind"] == "trade":
                    await pub.trade(row["topic"], price=float(row["last"]), size=float(row["size"]),
                                    ts=ts * 1_000_000)
                else:
                    await pub.publish(row["topic"], bid=float(row["bid"]), ask=float(row["ask"]),
                                      ts=ts * 1_000_000)
        await pub.flush()
        print(f"replayed {pub.queued} updates: {pub.acknowledged} acknowledged, {pub.lost} lost")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("url")
    p.add_argument("token")
    p.add_argument("csv")
    p.add_argument("--speed", type=float, default=0.0, help="replay speed-up (0: as fast as possible)")
    a = p.parse_args()
    asyncio.run(replay(a.url, a.token, a.csv, a.speed))


if __name__ == "__main__":
    main()
