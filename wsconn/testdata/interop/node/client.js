#!/usr/bin/env node
// client.js drives a wsgate server with Node's ws library, for
// wsconn/interop_test.go.
//
//   node client.js ws://127.0.0.1:PORT SCENARIO
//
// The server must serve handler.Echo at /echo and handler.Channels at /ws.
// Each check prints "ok ..." or "FAIL ..."; the exit status is 0 only if
// every check passed (1 on a mismatch, 2 on bad usage). The scenarios and
// their payloads are the same as in ../python/client.py and in the Go
// clients of interop_test.go, which checks on the server side what arrived.
'use strict';

const WebSocket = require('ws');

const MAX_MESSAGE = 1 << 20; // the server's default MaxMessageSize
const ECHO_SIZES = [0, 1, 125, 126, 65535, 65536, MAX_MESSAGE];
const FRAG_TEXT = Buffer.from('fragmented é message, done ✓'); // é is split across the first two fragments
const FRAG_BINARY_PARTS = [70000, 70000, 70000];
const CLOSE_REASON = 'interop bye';
const PING_PAYLOADS = [Buffer.from('interop-ping'), Buffer.alloc(0), Buffer.alloc(125, 0x70)];
const CHANNEL = 'interop.node';
// Published as these exact bytes: the push must carry them unchanged,
// whitespace and number spelling included.
const PUBLISH_DATA = '{"msg": "h\\u00e9llo ✓", "n": [1, 2.5, -3e2], "ok": true, "nil": null}';

let failures = 0;

function ok(msg) {
  console.log(`ok ${msg}`);
}

function fail(msg) {
  failures++;
  console.log(`FAIL ${msg}`);
}

function check(cond, msg) {
  if (cond) ok(msg);
  else fail(msg);
}

// textPayload is n bytes of valid UTF-8: "é€😀" (9 bytes) when it fits,
// then ASCII letters.
function textPayload(n) {
  const prefix = n >= 9 ? Buffer.from('é€😀') : Buffer.alloc(0);
  const b = Buffer.alloc(n);
  prefix.copy(b);
  for (let i = prefix.length; i < n; i++) b[i] = 0x61 + (i % 26);
  return b;
}

// binaryPayload is n bytes with every byte value.
function binaryPayload(n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

// connect opens a WebSocket on path and queues its events, so a scenario
// reads them in order with next().
function connect(base, path) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base + path);
    const events = [];
    let wake = null;
    const push = (ev) => {
      events.push(ev);
      if (wake) {
        const w = wake;
        wake = null;
        w();
      }
    };
    ws.on('message', (data, isBinary) => push({ kind: 'message', data, isBinary }));
    ws.on('pong', (data) => push({ kind: 'pong', data }));
    ws.on('close', (code, reason) => push({ kind: 'close', code, reason: reason.toString() }));
    ws.on('error', (err) => push({ kind: 'error', err }));
    // next returns the next event; once the connection has closed, the
    // close event is returned again and again.
    ws.next = async () => {
      while (events.length === 0) await new Promise((r) => { wake = r; });
      return events[0].kind === 'close' ? events[0] : events.shift();
    };
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function describe(ev) {
  switch (ev.kind) {
    case 'message':
      return `${ev.isBinary ? 'binary' : 'text'} message of ${ev.data.length} bytes`;
    case 'pong':
      return `pong of ${ev.data.length} bytes`;
    case 'close':
      return `close ${ev.code} ${JSON.stringify(ev.reason)}`;
    default:
      return `error ${ev.err && ev.err.message}`;
  }
}

// expectMessage reads the next event and checks it is a message of the
// given type and bytes.
async function expectMessage(ws, isBinary, want, what) {
  const ev = await ws.next();
  if (ev.kind !== 'message') return fail(`${what}: got ${describe(ev)}, want a message`);
  const wantDesc = `${isBinary ? 'binary' : 'text'} message of ${want.length} bytes`;
  if (ev.isBinary === isBinary && Buffer.compare(ev.data, want) === 0) return ok(`${what}: ${wantDesc}`);
  let i = 0;
  while (i < Math.min(ev.data.length, want.length) && ev.data[i] === want[i]) i++;
  fail(`${what}: got ${describe(ev)}, want ${wantDesc} (first difference at byte ${i})`);
}

// expectClose reads events until the close event and checks its code.
async function expectClose(ws, code, what) {
  for (;;) {
    const ev = await ws.next();
    if (ev.kind === 'error') continue; // the close event follows
    if (ev.kind !== 'close') return fail(`${what}: got ${describe(ev)} before the close`);
    return check(ev.code === code, `${what}: got close code ${ev.code}, want ${code}`);
  }
}

// closeNormally closes with 1000 and expects the server's echo.
async function closeNormally(ws, what) {
  ws.close(1000);
  await expectClose(ws, 1000, what);
}

const scenarios = {
  async echo(base) {
    const ws = await connect(base, '/echo');
    for (const n of ECHO_SIZES) {
      const text = textPayload(n);
      ws.send(text, { binary: false });
      await expectMessage(ws, false, text, `echo text ${n}`);
      const bin = binaryPayload(n);
      ws.send(bin, { binary: true });
      await expectMessage(ws, true, bin, `echo binary ${n}`);
    }
    await closeNormally(ws, 'close after echo');
  },

  async fragmented(base) {
    const ws = await connect(base, '/echo');
    // Text in three frames, the first ending inside "é", with a ping
    // between the first two.
    ws.send(FRAG_TEXT.subarray(0, 12), { binary: false, fin: false });
    ws.ping('mid-fragment');
    ws.send(FRAG_TEXT.subarray(12, 24), { fin: false });
    ws.send(FRAG_TEXT.subarray(24), { fin: true });
    const ev = await ws.next();
    check(ev.kind === 'pong' && ev.data.toString() === 'mid-fragment',
      `pong for the ping between fragments, before the echo: got ${describe(ev)}`);
    await expectMessage(ws, false, FRAG_TEXT, 'fragmented text echoed as one message');
    // Binary in three frames over 64 KiB each (64-bit lengths).
    const parts = FRAG_BINARY_PARTS.map((n, i) => binaryPayload(n).fill(i + 1, 0, 1));
    parts.forEach((p, i) => ws.send(p, { binary: true, fin: i === parts.length - 1 }));
    await expectMessage(ws, true, Buffer.concat(parts), 'fragmented binary echoed as one message');
    await closeNormally(ws, 'close after fragments');
  },

  async ping(base) {
    const ws = await connect(base, '/echo');
    for (const p of PING_PAYLOADS) {
      ws.ping(p);
      const ev = await ws.next();
      check(ev.kind === 'pong' && Buffer.compare(ev.data, p) === 0,
        `pong echoes a ${p.length}-byte ping payload: got ${describe(ev)}`);
    }
    await closeNormally(ws, 'close after pings');
  },

  async 'close-1000'(base) {
    const ws = await connect(base, '/echo');
    await closeNormally(ws, 'server echoes close 1000');
  },

  async 'close-4001'(base) {
    const ws = await connect(base, '/echo');
    ws.close(4001, CLOSE_REASON);
    await expectClose(ws, 4001, 'server echoes close 4001');
  },

  async 'invalid-utf8'(base) {
    const ws = await connect(base, '/echo');
    ws.send(Buffer.from([0x68, 0x69, 0xff, 0xfe]), { binary: false }); // ws does not check what it sends
    await expectClose(ws, 1007, 'invalid UTF-8 text closes with 1007');
  },

  async 'too-big'(base) {
    const ws = await connect(base, '/echo');
    ws.send(Buffer.alloc(MAX_MESSAGE + 1), { binary: true });
    await expectClose(ws, 1009, 'message of max+1 bytes closes with 1009');
  },

  async channels(base) {
    const a = await connect(base, '/ws');
    const b = await connect(base, '/ws');
    a.send(`{"op":"subscribe","channel":"${CHANNEL}","id":"sub-1"}`);
    await expectMessage(a, false, Buffer.from('{"op":"ack","id":"sub-1"}'), 'subscribe ack');
    b.send(`{"op":"publish","channel":"${CHANNEL}","data":${PUBLISH_DATA},"id":42}`);
    await expectMessage(b, false, Buffer.from('{"op":"ack","id":42,"delivered":1}'), 'publish ack');
    await expectMessage(a, false, Buffer.from(`{"channel":"${CHANNEL}","data":${PUBLISH_DATA}}`), 'push');
    await closeNormally(a, 'close subscriber');
    await closeNormally(b, 'close publisher');
  },
};

async function main() {
  const [base, name] = process.argv.slice(2);
  const run = scenarios[name];
  if (!base || !run) {
    console.error(`usage: node client.js ws://HOST:PORT {${Object.keys(scenarios).join('|')}}`);
    process.exit(2);
  }
  const timer = setTimeout(() => {
    fail(`${name}: timed out`);
    process.exit(1);
  }, 15000); // before the Go test's own 20s timeout
  try {
    await run(base);
  } catch (err) {
    fail(`${name}: ${err && err.stack ? err.stack : err}`);
  }
  clearTimeout(timer);
  console.log(`${failures === 0 ? 'PASS' : 'FAIL'} node ws ${require('ws/package.json').version} ${name}`);
  process.exit(failures === 0 ? 0 : 1);
}

main();
