"""permessage-deflate conformance against tickcast's echo mode, modeled on
the Autobahn suite's cases 12 (compressed messages of many sizes and kinds)
and 13 (the negotiation parameters), which cannot run on this machine (the
suite needs Python 2 or Docker). Python's `websockets` is the independent
RFC 7692 implementation on the other end.

Usage: python deflate_echo.py ws://127.0.0.1:PORT/ws
Prints one line per case group and "N cases passed"; exits 1 on the first
failure, saying which.
"""
import asyncio
import os
import random
import sys

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

URL = sys.argv[1]
SIZES = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072]


def payloads(size, rng):
    """The four kinds case 12 sends: text and binary, compressible and not."""
    words = [b"bid", b"ask", b"101.25", b"AAPL", b"seq", b"{", b"}", b":", b",", b'"']
    text = b""
    while len(text) < size:
        text += rng.choice(words)
    yield "text, repetitive", text[:size].decode()
    yield "text, random", "".join(chr(rng.randrange(0x20, 0x7f)) for _ in range(size))
    yield "binary, random", os.urandom(size)
    yield "binary, zeros", bytes(size)


async def echo_many(ws, count, size, rng):
    for kind, msg in payloads(size, rng):
        for _ in range(count):
            await ws.send(msg)
            got = await ws.recv()
            if got != msg:
                raise AssertionError(f"{kind}, {size} bytes: the echo differs")


async def case12(rng):
    """Compressed messages of many sizes and kinds, echoed back exactly."""
    n = 0
    async with websockets.connect(URL, max_size=None) as ws:
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        assert "permessage-deflate" in ext, f"not negotiated: {ext!r}"
        for size in SIZES:
            count = 10 if size <= 8192 else 2
            await echo_many(ws, count, size, rng)
            n += 4
    print(f"12: {len(SIZES)} sizes x 4 kinds echoed compressed")
    return n


# (what the client offers, what the answer must contain, what it must not;
# None: compression declined, the session plain)
OFFERS = [
    ({}, "client_no_context_takeover", None),
    ({"client_no_context_takeover": True}, "client_no_context_takeover", None),
    ({"server_no_context_takeover": True}, "server_no_context_takeover", None),
    ({"client_max_window_bits": 9}, "client_no_context_takeover", None),
    ({"client_max_window_bits": 12}, "client_no_context_takeover", None),
    ({"client_max_window_bits": 15}, "client_no_context_takeover", None),
    ({"server_max_window_bits": 15}, "permessage-deflate", None),
    ({"server_max_window_bits": 9}, None, None),
    ({"server_max_window_bits": 12, "client_max_window_bits": 12}, None, None),
    ({"server_no_context_takeover": True, "client_no_context_takeover": True,
      "client_max_window_bits": 10}, "server_no_context_takeover", None),
]


async def case13(rng):
    """Each set of negotiation parameters: accepted with the right answer,
    or declined, and either way the echo exact."""
    n = 0
    for params, must, _ in OFFERS:
        factory = ClientPerMessageDeflateFactory(**params)
        async with websockets.connect(URL, extensions=[factory], compression=None,
                                      max_size=None) as ws:
            ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            if must is None:
                assert ext == "", f"{params}: should be declined, got {ext!r}"
            else:
                assert must in ext, f"{params}: answer {ext!r} lacks {must}"
            for size in (16, 1024, 65536):
                await echo_many(ws, 4, size, rng)
            n += 1
    print(f"13: {len(OFFERS)} parameter sets negotiated or declined, echoes exact")
    return n


async def main():
    rng = random.Random(7692)
    n = await case12(rng) + await case13(rng)
    print(f"{n} cases passed")


asyncio.run(main())
