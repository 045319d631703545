#!/usr/bin/python3
"""deflate_window.py checks a wsgate server's permessage-deflate window with
the Python websockets library, for TestDeflateWindowPython in
wsconn/deflate_test.go.

    /usr/bin/python3 deflate_window.py ws://127.0.0.1:PORT/echo BITS

It offers permessage-deflate with server_max_window_bits=BITS (8 to 15), as
Autobahn's cases 13.3 to 13.6 do, checks that the server accepts it with that
window, then sends messages that repeat themselves far back and checks their
echoes, which the library inflates with zlib set to the window the server
answered (wbits=-BITS). zlib does not catch a back-reference beyond that
window when a whole message inflates in one call, so this checks that a
client no one here wrote accepts the answer and reads the frames; that they
stay within the window is checked by the conformance suite (section 12.2),
with a strict decoder. It prints "ok ..." or "FAIL ..." per check; the exit
status is 0 only if all passed. Written for Debian's python3-websockets 10.4,
like client.py.
"""

import asyncio
import random
import sys

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory


async def main(url, bits):
    factory = ClientPerMessageDeflateFactory(server_max_window_bits=bits, client_max_window_bits=True)
    failures = 0
    async with websockets.connect(url, extensions=[factory], compression=None, max_size=1 << 20) as ws:
        exts = ws.extensions
        if len(exts) != 1 or exts[0].remote_max_window_bits != bits or not exts[0].remote_no_context_takeover:
            print(f"FAIL negotiated {exts!r}, want permessage-deflate, server window {bits}, no context takeover")
            return 1
        print(f"ok negotiated server window {bits}")
        rng = random.Random(bits)
        for size in (300, 2048, 20000):
            half = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(size))
            msg = half + half  # a repeat `size` bytes back
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 5)
            if got != msg:
                print(f"FAIL echo of {len(msg)} characters: got {len(got)}")
                failures += 1
            else:
                print(f"ok echo of {len(msg)} characters, repeating {size} back")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]))))
