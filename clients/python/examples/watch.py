"""Prints every price event for BTC-USD and the FX topics, with the merged value.

    python examples/watch.py ws://127.0.0.1:8080/ws
"""
import asyncio
import sys

from tickcast_client import Client, Snapshot, Update


async def main(url: str) -> None:
    async with Client(url) as client:
        await client.subscribe(["BTC-USD", "FX.*"], max_rate=4)
        async for ev in client.events():
            if isinstance(ev, (Snapshot, Update)):
                print(f"{ev.topic:<12} seq {ev.seq:>6}  {client.values[ev.topic]}")
            else:
                print(ev)


asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8080/ws"))
