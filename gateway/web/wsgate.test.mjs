// Node's test runner against a real wsgate: node --test wsgate.test.mjs,
// with WSGATE_URL (ws://host:port/ws) and WS_MODULE (the path of the ws
// package's wrapper.mjs) set; gateway's TestJSClientInNode runs it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { WsgateClient } from "./wsgate.js";

const url = process.env.WSGATE_URL;
const { default: WebSocket } = await import(process.env.WS_MODULE);

// until polls cond every 5 ms for up to 10 s.
async function until(what, cond) {
  const deadline = Date.now() + 10000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const connected = (c) => until("connected", () => c.state === "connected");

test("publish with an ack, pushes with offsets, history, presence", async () => {
  const a = new WsgateClient(url, { WebSocket, info: { name: "alice" } });
  const b = new WsgateClient(url, { WebSocket, info: { name: "bob" } });
  try {
    await connected(a);
    await connected(b);
    const got = [];
    a.subscribe("node:room", { onPublication: (p) => got.push(p) });
    await until("a subscribed", () => a.subs.get("node:room").position.epoch !== "");
    const pos = await b.publish("node:room", { text: "hi" });
    assert.ok(pos.offset >= 1 && pos.epoch);
    await until("the push", () => got.length === 1);
    assert.deepEqual(got[0], { channel: "node:room", offset: pos.offset, data: { text: "hi" } });
    const h = await b.history("node:room", { limit: 10 });
    assert.equal(h.offset, pos.offset);
    assert.equal(h.publications.length, 1);
    const pres = await b.presence("node:room");
    assert.equal(pres.length, 1);
    assert.deepEqual(pres[0].info, { name: "alice" });
    await assert.rejects(b.publish("bad channel", 1), /bad_channel/);
  } finally {
    a.close();
    b.close();
  }
});

test("a dropped connection reconnects and recovers what it missed, once and in order", async () => {
  const sub = new WsgateClient(url, { WebSocket, minDelay: 5, maxDelay: 50 });
  const pub = new WsgateClient(url, { WebSocket });
  const states = [];
  sub.onState = (s) => states.push(s.state);
  try {
    await connected(sub);
    await connected(pub);
    const got = [];
    const joins = [];
    sub.subscribe("node:recover", { onPublication: (p) => got.push(p), onJoin: (p) => joins.push(p) });
    await until("subscribed", () => sub.subs.get("node:recover").position.epoch !== "");
    const first = await pub.publish("node:recover", 0);
    await until("the first push", () => got.length === 1);
    sub.ws.terminate(); // the network goes: no close frame
    const acked = [first.offset];
    for (let i = 1; i <= 10; i++) acked.push((await pub.publish("node:recover", i)).offset);
    await until("the recovery", () => got.length === 11);
    assert.deepEqual(got.map((p) => p.offset), acked);
    assert.deepEqual(got.map((p) => p.data), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.ok(states.includes("disconnected") && states.at(-1) === "connected");
    assert.ok(joins.length >= 1);
  } finally {
    sub.close();
    pub.close();
  }
});

test("a close the server means as final stops the retries and says why", async () => {
  // 1008 is final: simulated by the client's own close path on a server close code.
  const c = new WsgateClient(url, { WebSocket, minDelay: 5 });
  const states = [];
  c.onState = (s) => states.push(s);
  try {
    await connected(c);
    c.ws.close(4001, "test"); // a 4000-4999 close ends for good, as from the server
    await until("final", () => states.some((s) => s.final));
    const last = states.at(-1);
    assert.equal(last.state, "disconnected");
    assert.equal(last.final, true);
  } finally {
    c.close();
  }
});

// jwt signs an HS256 token with node:crypto: what a login service hands.
async function jwt(secret, claims) {
  const { createHmac } = await import("node:crypto");
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = b64({ alg: "HS256", typ: "JWT" }) + "." + b64(claims);
  return body + "." + createHmac("sha256", secret).update(body).digest("base64url");
}

test("the server closing with 1008 at the token's expiry stops the retries, with its code and reason", async () => {
  const authURL = process.env.WSGATE_AUTH_URL;
  const secret = process.env.WSGATE_JWT_SECRET;
  const exp = Math.floor(Date.now() / 1000) - 28; // the server allows 30 s of clock skew: it closes in about 2 s
  const token = await jwt(secret, { sub: "alice", exp, subscribe: ["room"] });
  const c = new WsgateClient(authURL, { WebSocket, minDelay: 5, token: async () => ({ token }) }); // no expiry given: never refreshed
  const states = [];
  c.onState = (s) => states.push(s);
  try {
    await connected(c);
    await until("the server's close", () => states.some((s) => s.final));
    const last = states.at(-1);
    assert.equal(last.code, 1008);
    assert.match(last.reason, /authorization expired/);
    // Every attempt reports "connecting" (the first before onState was set): none followed.
    assert.equal(states.filter((s) => s.state === "connecting").length, 0, "no retry after a final close");
    assert.equal(c.ws, null);
  } finally {
    c.close();
  }
});

test("a refused token is told by the server's close (4401 and the reason), and not retried", async () => {
  const authURL = process.env.WSGATE_AUTH_URL;
  const secret = process.env.WSGATE_JWT_SECRET;
  const token = await jwt(secret, { sub: "alice", exp: Math.floor(Date.now() / 1000) - 3600, subscribe: ["room"] });
  let asked = 0;
  const c = new WsgateClient(authURL, { WebSocket, minDelay: 5, token: async () => (asked++, { token }) });
  const states = [];
  c.onState = (s) => states.push(s);
  try {
    await until("the refusal", () => states.some((s) => s.final));
    const last = states.at(-1);
    assert.equal(last.code, 4401);
    assert.match(last.reason, /expired/);
    assert.equal(asked, 1, "one attempt: a refused token is final");
    assert.equal(c.ws, null);
  } finally {
    c.close();
  }
});

test("without refusal=close a refused handshake is an HTTP 401", async () => {
  const ws = new WebSocket(process.env.WSGATE_AUTH_URL);
  const status = await new Promise((resolve) => {
    ws.on("unexpected-response", (_req, res) => resolve(res.statusCode));
    ws.on("open", () => resolve("open"));
    ws.on("error", () => {});
  });
  ws.terminate();
  assert.equal(status, 401);
});
