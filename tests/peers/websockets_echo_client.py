"""Python `websockets` peer for tests/wsio_peers.rs.

Sends binary messages to a WsIo echo server, checks that the echoed bytes are the same stream,
then closes with a code and a reason that carries the verdict.
Usage: python websockets_echo_client.py URL SIZES CODE REASON
(SIZES: comma-separated message sizes; byte i of message m is (i*31 + m*7 + 1) mod 256).
"""

import asyncio
import sys

from websockets.asyncio.client import connect


def message(m: int, n: int) -> bytes:
    return bytes((i * 31 + m * 7 + 1) & 0xFF for i in range(n))


async def main(url: str, sizes: list[int], code: int, reason: str) -> int:
    sent = [message(m, n) for m, n in enumerate(sizes)]
    expected = b"".join(sent)
    async with connect(url, max_size=4 << 20, compression=None) as ws:
        for data in sent:
            await ws.send(data)
        echo = bytearray()
        while len(echo) < len(expected):
            data = await ws.recv()
            if isinstance(data, str):
                verdict = "fail: text message from the server"
                break
            echo += data
        else:
            verdict = "ok" if bytes(echo) == expected else f"fail: echo differs ({len(echo)} bytes)"
        await ws.close(code=code, reason=f"{reason} {verdict}")
        ok = verdict == "ok" and ws.close_code == code
        print(f"RESULT {'ok' if ok else 'fail'}: verdict={verdict} close={ws.close_code}")
        return 0 if ok else 1


if __name__ == "__main__":
    url, sizes, code, reason = sys.argv[1:5]
    sys.exit(
        asyncio.run(
            asyncio.wait_for(main(url, [int(s) for s in sizes.split(",")], int(code), reason), 60)
        )
    )
