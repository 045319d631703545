#!/usr/bin/python3
"""client.py drives a wsgate server with the Python websockets library, for
wsconn/interop_test.go.

    /usr/bin/python3 client.py ws://127.0.0.1:PORT SCENARIO

It is written for Debian's python3-websockets 10.4 (scripts/deps.sh installs
it), whose client is the asyncio one (websockets.connect); the sync client
came in 11.0. Run it with Debian's /usr/bin/python3, which sees that package.

The server must serve handler.Echo at /echo and handler.Channels at /ws. Each
check prints "ok ..." or "FAIL ..."; the exit status is 0 only if every check
passed (1 on a mismatch, 2 on bad usage). The scenarios and their payloads
are the same as in ../node/client.js and in the Go clients of
interop_test.go, which checks on the server side what arrived.
"""

import asyncio
import sys

import websockets
from websockets.exceptions import ConnectionClosed

MAX_MESSAGE = 1 << 20  # the server's default MaxMessageSize
ECHO_SIZES = [0, 1, 125, 126, 65535, 65536, MAX_MESSAGE]
# send() encodes each str fragment on its own, so unlike the other clients
# this one cannot split "é" across fragments; the message is the same.
FRAG_TEXT = ["fragmented é", " message, ", "done ✓"]
FRAG_BINARY_PARTS = [70000, 70000, 70000]
CLOSE_REASON = "interop bye"
PING_PAYLOADS = [b"interop-ping", b"", b"p" * 125]
CHANNEL = "interop.python"
# Published as these exact bytes: the push must carry them unchanged,
# whitespace and number spelling included.
PUBLISH_DATA = r'{"msg": "h\u00e9llo ✓", "n": [1, 2.5, -3e2], "ok": true, "nil": null}'
OP_TEXT = 0x1
TIMEOUT = 5  # seconds, for one step

failures = 0


def ok(msg):
    print("ok", msg, flush=True)


def fail(msg):
    global failures
    failures += 1
    print("FAIL", msg, flush=True)


def check(cond, msg):
    if cond:
        ok(msg)
    else:
        fail(msg)


def text_payload(n):
    """n bytes of valid UTF-8: "é€😀" (9 bytes) when it fits, then ASCII."""
    prefix = "é€😀".encode() if n >= 9 else b""
    b = bytearray(prefix) + bytes(0x61 + (i % 26) for i in range(len(prefix), n))
    return b.decode()


def binary_payload(n):
    """n bytes with every byte value."""
    return bytes((i * 31 + 7) & 0xFF for i in range(n))


def binary_parts():
    """The fragments of the binary fragmented message: each starts with its
    number, 1-based."""
    parts = []
    for i, n in enumerate(FRAG_BINARY_PARTS):
        p = bytearray(binary_payload(n))
        p[0] = i + 1
        parts.append(bytes(p))
    return parts


def describe(msg):
    if isinstance(msg, str):
        return "text message of %d bytes" % len(msg.encode())
    return "binary message of %d bytes" % len(msg)


def first_diff(got, want):
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            return i
    return min(len(got), len(want))


async def connect(base, path):
    # max_size: the client's own limit on what it receives (default 1 MiB)
    # must not be what stops a 1 MiB echo.
    return await websockets.connect(base + path, max_size=4 * MAX_MESSAGE, close_timeout=5, open_timeout=TIMEOUT)


async def expect_message(ws, want, what):
    try:
        got = await asyncio.wait_for(ws.recv(), TIMEOUT)
    except ConnectionClosed as e:
        fail("%s: connection closed (%s), want %s" % (what, e, describe(want)))
        return
    if type(got) is type(want) and got == want:
        ok("%s: %s" % (what, describe(got)))
    else:
        fail("%s: got %s, want %s (first difference at %d)" % (what, describe(got), describe(want), first_diff(got, want)))


async def expect_close(ws, code, what):
    """Reads until the server's close frame and checks its code."""
    try:
        while True:
            msg = await asyncio.wait_for(ws.recv(), TIMEOUT)
            fail("%s: got %s before the close" % (what, describe(msg)))
    except ConnectionClosed:
        pass
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    check(ws.close_code == code, "%s: got close code %s, want %d" % (what, ws.close_code, code))


async def close_with(ws, code, reason, what):
    """Closes with code and reason and checks that the server echoed the code."""
    await asyncio.wait_for(ws.close(code, reason), TIMEOUT)
    check(ws.close_code == code, "%s: got close code %s, want %d" % (what, ws.close_code, code))


async def echo(base):
    ws = await connect(base, "/echo")
    for n in ECHO_SIZES:
        text = text_payload(n)
        await ws.send(text)
        await expect_message(ws, text, "echo text %d" % n)
        data = binary_payload(n)
        await ws.send(data)
        await expect_message(ws, data, "echo binary %d" % n)
    await close_with(ws, 1000, "", "close after echo")


async def fragmented(base):
    ws = await connect(base, "/echo")
    pongs = []

    async def text_fragments():
        # A ping between the first two fragments (RFC 6455 section 5.4).
        yield FRAG_TEXT[0]
        pongs.append(await ws.ping(b"mid-fragment"))
        for f in FRAG_TEXT[1:]:
            yield f

    await ws.send(text_fragments())
    await expect_message(ws, "".join(FRAG_TEXT), "fragmented text echoed as one message")
    try:
        await asyncio.wait_for(pongs[0], TIMEOUT)
        ok("pong for the ping between fragments")
    except asyncio.TimeoutError:
        fail("no pong for the ping between fragments")
    parts = binary_parts()
    await ws.send(parts)
    await expect_message(ws, b"".join(parts), "fragmented binary echoed as one message")
    await close_with(ws, 1000, "", "close after fragments")


async def ping(base):
    ws = await connect(base, "/echo")
    for p in PING_PAYLOADS:
        # The waiter completes only on a pong with this exact payload.
        waiter = await ws.ping(p)
        try:
            await asyncio.wait_for(waiter, TIMEOUT)
            ok("pong echoes a %d-byte ping payload" % len(p))
        except asyncio.TimeoutError:
            fail("no pong with the %d-byte payload of the ping" % len(p))
    await close_with(ws, 1000, "", "close after pings")


async def close_1000(base):
    ws = await connect(base, "/echo")
    await close_with(ws, 1000, "", "server echoes close 1000")


async def close_4001(base):
    ws = await connect(base, "/echo")
    await close_with(ws, 4001, CLOSE_REASON, "server echoes close 4001")


async def invalid_utf8(base):
    ws = await connect(base, "/echo")
    # send() encodes str itself and sends bytes as binary, so it cannot
    # make invalid text; write_frame frames (and masks) these bytes as a
    # text frame as they are.
    await ws.write_frame(True, OP_TEXT, b"hi\xff\xfe")
    await expect_close(ws, 1007, "invalid UTF-8 text closes with 1007")


async def too_big(base):
    ws = await connect(base, "/echo")
    try:
        await ws.send(bytes(MAX_MESSAGE + 1))
    except ConnectionClosed:
        pass  # the server may close before the whole frame is out
    await expect_close(ws, 1009, "message of max+1 bytes closes with 1009")


async def channels(base):
    a = await connect(base, "/ws")
    b = await connect(base, "/ws")
    await a.send('{"op":"subscribe","channel":"%s","id":"sub-1"}' % CHANNEL)
    await expect_message(a, '{"op":"ack","id":"sub-1"}', "subscribe ack")
    await b.send('{"op":"publish","channel":"%s","data":%s,"id":42}' % (CHANNEL, PUBLISH_DATA))
    await expect_message(b, '{"op":"ack","id":42,"delivered":1}', "publish ack")
    await expect_message(a, '{"channel":"%s","data":%s}' % (CHANNEL, PUBLISH_DATA), "push")
    await close_with(a, 1000, "", "close subscriber")
    await close_with(b, 1000, "", "close publisher")


SCENARIOS = {
    "echo": echo,
    "fragmented": fragmented,
    "ping": ping,
    "close-1000": close_1000,
    "close-4001": close_4001,
    "invalid-utf8": invalid_utf8,
    "too-big": too_big,
    "channels": channels,
}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in SCENARIOS:
        print("usage: client.py ws://HOST:PORT {%s}" % "|".join(SCENARIOS), file=sys.stderr)
        return 2
    base, name = sys.argv[1], sys.argv[2]
    try:
        asyncio.run(asyncio.wait_for(SCENARIOS[name](base), 3 * TIMEOUT))
    except Exception as e:  # any failure of the scenario is a FAIL line
        fail("%s: %s: %s" % (name, type(e).__name__, e))
    print("%s python websockets %s %s" % ("PASS" if failures == 0 else "FAIL", websockets.__version__, name))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
