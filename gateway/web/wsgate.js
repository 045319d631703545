// wsgate.js: a client of wsgate's /ws protocol for browsers and Node 20+.
// One ES module, no build step, no dependency: in a browser it uses the
// global WebSocket; in Node pass the ws package ({ WebSocket: WS }).
//
//   import { WsgateClient } from "/wsgate.js";
//   const c = new WsgateClient("wss://chat.example/ws", { info: { name: "alice" } });
//   c.onState = (s) => console.log(s.state, s.reason);
//   c.subscribe("room:42", { onPublication: (p) => show(p), onUnrecovered: () => reload() });
//   await c.publish("room:42", { text: "hi" }); // resolves with {offset, epoch} once stored
//
// It reconnects with exponential backoff and full jitter, subscribes again
// with "recover" from the last offset it delivered (every publication the
// server still has, once and in order), and stops retrying where retrying
// cannot help: a close with 1008, 1003 or 4000-4999, reported with the
// server's code and reason. A refused handshake is one of them: the URL asks
// for refusal=close, so wsgate completes the handshake and closes with 4000
// plus the HTTP status (4401 for a missing or refused token, 4403, 4400)
// and the reason, which a browser could not read from an HTTP answer. An
// expired token is 1008.
// docs/protocol.md is the protocol.

const FINAL = (code) => code === 1008 || code === 1003 || (code >= 4000 && code <= 4999);

export class WsgateClient {
  /**
   * @param {string} url ws:// or wss:// URL of /ws
   * @param {object} [opts] see wsgate.d.ts
   */
  constructor(url, opts = {}) {
    this.url = url;
    this.opts = { minDelay: 500, maxDelay: 30000, maxAttempts: 0, requestTimeout: 10000, ...opts };
    this.WebSocket = opts.WebSocket || globalThis.WebSocket;
    if (!this.WebSocket) throw new Error("wsgate.js: no WebSocket: pass { WebSocket } (the ws package in Node 20)");
    this.subs = new Map(); // channel -> subscription
    this.waiting = new Map(); // request id -> {resolve, reject, timer}
    this.next = 0;
    this.attempt = 0;
    this.closed = false;
    this.ws = null;
    this.state = "disconnected";
    this.onState = null; // ({state, code, reason, retryIn, attempt}) => void
    this.token = null;
    this.expires = 0;
    this.refreshTimer = null;
    this.retryTimer = null;
    this.connect();
  }

  setState(s) {
    this.state = s.state;
    if (this.onState) this.onState(s);
  }

  async connect() {
    if (this.closed) return;
    this.setState({ state: "connecting", attempt: this.attempt });
    const u = new URL(this.url);
    u.searchParams.set("refusal", "close"); // a refused handshake is told by a close frame
    if (this.opts.info !== undefined) u.searchParams.set("info", JSON.stringify(this.opts.info));
    if (this.opts.token) {
      try {
        const t = await this.opts.token();
        this.token = t.token;
        this.expires = t.expires ? +t.expires : 0;
        u.searchParams.set("token", t.token); // browsers cannot set headers on a WebSocket
      } catch (e) {
        this.retry(1006, "no token: " + e.message);
        return;
      }
    }
    const ws = new this.WebSocket(u.toString());
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.setState({ state: "connected" });
      for (const s of this.subs.values()) this.sendSubscribe(s);
      this.scheduleRefresh();
    };
    ws.onmessage = (e) => this.dispatch(typeof e.data === "string" ? e.data : String(e.data));
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.refreshTimer);
      for (const [id, w] of this.waiting) {
        clearTimeout(w.timer);
        w.reject(new Error("wsgate.js: connection lost before the answer"));
        this.waiting.delete(id);
      }
      let reason = e.reason || "";
      if (!opened && !reason) {
        reason = "the handshake failed (the server is unreachable or refused the page's origin)";
      }
      if (this.closed || FINAL(e.code)) {
        this.closed = true;
        this.setState({ state: "disconnected", code: e.code, reason, final: true });
        return;
      }
      this.retry(e.code, reason);
    };
  }

  retry(code, reason) {
    this.attempt++;
    if (this.opts.maxAttempts && this.attempt > this.opts.maxAttempts) {
      this.closed = true;
      this.setState({ state: "disconnected", code, reason, final: true });
      return;
    }
    const ceil = Math.min(this.opts.maxDelay, this.opts.minDelay * 2 ** Math.min(this.attempt, 30));
    const delay = Math.random() * ceil;
    this.setState({ state: "disconnected", code, reason, retryIn: delay, attempt: this.attempt });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    if (!this.opts.token || !this.expires) return;
    const life = this.expires - Date.now();
    const before = this.opts.refreshBefore || Math.max(life / 10, 1000);
    this.refreshTimer = setTimeout(async () => {
      try {
        const t = await this.opts.token();
        await this.request({ op: "refresh", token: t.token });
        this.token = t.token;
        this.expires = t.expires ? +t.expires : 0;
        this.scheduleRefresh();
      } catch (e) {
        // the server closes at the old expiry; the reconnect gets a new token
      }
    }, Math.max(life - before, 0));
  }

  /** Closes for good. */
  close(code = 1000, reason = "") {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.refreshTimer);
    if (this.ws) this.ws.close(code, reason);
    else this.setState({ state: "disconnected", code, reason, final: true });
  }

  send(obj) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  sendSubscribe(s) {
    const req = { op: "subscribe", channel: s.channel, id: "s:" + s.channel };
    if (s.position.epoch) req.recover = { offset: s.position.offset, epoch: s.position.epoch };
    if (s.handlers.onJoin || s.handlers.onLeave) req.join_leave = true;
    this.send(req);
  }

  /**
   * Subscribes now (if connected) and after every reconnect, recovering.
   * @returns {{channel: string, position: {offset: number, epoch: string}, unsubscribe(): void}}
   */
  subscribe(channel, handlers = {}) {
    const s = {
      channel,
      handlers,
      position: handlers.from ? { offset: handlers.from.offset, epoch: handlers.from.epoch } : { offset: 0, epoch: "" },
      unsubscribe: () => {
        this.subs.delete(channel);
        this.send({ op: "unsubscribe", channel });
      },
    };
    this.subs.set(channel, s);
    this.sendSubscribe(s);
    return s;
  }

  request(req) {
    const id = "r" + ++this.next;
    return new Promise((resolve, reject) => {
      if (!this.send({ ...req, id })) {
        reject(new Error("wsgate.js: not connected"));
        return;
      }
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error("wsgate.js: no answer in " + this.opts.requestTimeout + " ms"));
      }, this.opts.requestTimeout);
      this.waiting.set(id, { resolve, reject, timer });
    });
  }

  /** Publishes; resolves with {offset, epoch} once the server acked (stored). */
  async publish(channel, data) {
    const a = await this.request({ op: "publish", channel, data });
    return { offset: a.offset || 0, epoch: a.epoch || "" };
  }

  /** The last limit publications of channel, oldest first. */
  async history(channel, { limit = 0, after } = {}) {
    const req = { op: "history", channel, limit };
    if (after) req.after = after;
    const a = await this.request(req);
    return { offset: a.offset || 0, epoch: a.epoch || "", publications: a.publications || [] };
  }

  /** The channel's subscribers on every server process. */
  async presence(channel) {
    return (await this.request({ op: "presence", channel })).presence;
  }

  /** Counts of the channel's subscribers and distinct users. */
  async presenceStats(channel) {
    const a = await this.request({ op: "presence_stats", channel });
    return { clients: a.clients, users: a.users };
  }

  dispatch(text) {
    let m;
    try {
      m = JSON.parse(text);
    } catch {
      return;
    }
    if (!m.op) {
      const s = this.subs.get(m.channel);
      if (!s) return;
      if (m.join) s.handlers.onJoin && s.handlers.onJoin(m.join);
      else if (m.leave) s.handlers.onLeave && s.handlers.onLeave(m.leave);
      else if (!(m.offset && m.offset <= s.position.offset)) {
        if (m.offset) s.position.offset = m.offset;
        s.handlers.onPublication && s.handlers.onPublication({ channel: m.channel, offset: m.offset || 0, data: m.data });
      }
      return;
    }
    const id = typeof m.id === "string" ? m.id : "";
    if (id.startsWith("s:")) {
      const s = this.subs.get(id.slice(2));
      if (!s) return;
      if (m.op === "error") {
        s.handlers.onError && s.handlers.onError({ code: m.code, message: m.message });
        return;
      }
      const unrecovered = m.recovered === false;
      if (unrecovered || (m.recovered === undefined && s.position.epoch !== m.epoch)) {
        s.position = { offset: m.offset || 0, epoch: m.epoch || "" };
      }
      if (unrecovered && m.reason !== "history_off" && s.handlers.onUnrecovered) s.handlers.onUnrecovered(m.reason);
      if (m.recovered === true && s.handlers.onRecovered) s.handlers.onRecovered();
      return;
    }
    const w = this.waiting.get(id);
    if (!w) return;
    this.waiting.delete(id);
    clearTimeout(w.timer);
    if (m.op === "error") {
      const err = new Error("wsgate: " + m.code + ": " + m.message);
      err.code = m.code;
      w.reject(err);
    } else {
      w.resolve(m);
    }
  }
}
