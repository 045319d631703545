// browser.js drives headless Chromium (Debian's, through playwright-core)
// against wsgate: the browser's own WebSocket implementation, on ws:// and
// wss:// (a self-signed certificate the test made; the browser is told to
// accept it). Usage: node browser.js URL [URL...], each URL a server base
// such as ws://127.0.0.1:1234 or wss://127.0.0.1:5678. Exits non-zero on
// any mismatch.
"use strict";
const launch = require("./launch");

// scenario runs inside the page: echo of text and binary, then channels
// between two sockets. It returns a list of failures (empty: all good).
async function scenario(base) {
  const failures = [];
  const open = (path) =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(base + path);
      ws.binaryType = "arraybuffer";
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new Error("cannot open " + base + path));
    });
  const next = (ws) =>
    new Promise((resolve, reject) => {
      ws.onmessage = (e) => resolve(e.data);
      ws.onclose = (e) => reject(new Error("closed " + e.code));
    });

  const echo = await open("/echo");
  for (const n of [0, 1, 125, 126, 65535, 65536, 1 << 20]) {
    const text = "é".repeat(n >> 1) + "x".repeat(n & 1); // multi-byte UTF-8
    echo.send(text);
    const got = await next(echo);
    if (got !== text) failures.push(`text ${n}: got ${got.length} chars`);
    const bin = new Uint8Array(n).map((_, i) => i * 7);
    echo.send(bin);
    const back = new Uint8Array(await next(echo));
    if (back.length !== n || back.some((b, i) => b !== bin[i])) failures.push(`binary ${n}: mismatch`);
  }
  const closed = new Promise((resolve) => (echo.onclose = (e) => resolve(e.code)));
  echo.close(4001, "bye");
  const code = await closed;
  if (code !== 4001) failures.push(`close: server echoed ${code}, want 4001`);

  const a = await open("/ws"), b = await open("/ws");
  a.send(JSON.stringify({ op: "subscribe", channel: "browser", id: 1 }));
  const ack = await next(a);
  if (ack !== '{"op":"ack","id":1}') failures.push("subscribe ack: " + ack);
  b.send(JSON.stringify({ op: "publish", channel: "browser", data: { hi: "there" }, id: 2 }));
  const [push, pubAck] = await Promise.all([next(a), next(b)]);
  if (push !== '{"channel":"browser","data":{"hi":"there"}}') failures.push("push: " + push);
  if (pubAck !== '{"op":"ack","id":2,"delivered":1}') failures.push("publish ack: " + pubAck);
  a.close();
  b.close();
  return failures;
}

(async () => {
  const bases = process.argv.slice(2);
  if (bases.length === 0) {
    console.error("usage: node browser.js ws://host:port [wss://host:port ...]");
    process.exit(2);
  }
  const browser = await launch("--ignore-certificate-errors"); // the test's self-signed certificate, for wss://
  let failed = false;
  try {
    const page = await browser.newPage();
    console.log("browser", browser.version());
    for (const base of bases) {
      const failures = await page.evaluate(scenario, base);
      if (failures.length > 0) {
        failed = true;
        for (const f of failures) console.log(`FAIL ${base}: ${f}`);
      } else {
        console.log(`ok ${base}: echo 0 B..1 MiB text and binary, close 4001, channels`);
      }
    }
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
})().catch((e) => {
  console.error("FAIL", e.message);
  process.exit(1);
});
