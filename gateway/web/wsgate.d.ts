// TypeScript declarations of wsgate.js (served at /wsgate.d.ts).

export interface Position { offset: number; epoch: string }
export interface Publication { channel: string; offset: number; data: unknown }
export interface Presence { client: string; user?: string; info?: unknown }
export interface ServerError { code: string; message: string }

export interface State {
  state: "connecting" | "connected" | "disconnected";
  /** The close code (1006: lost without one; 4401, 4403, 4400: the handshake was refused, the reason says why). */
  code?: number;
  /** The server's reason, or why the connection failed. */
  reason?: string;
  /** Milliseconds until the next attempt; absent when final. */
  retryIn?: number;
  attempt?: number;
  /** No reconnect follows: close() was called, the attempts ran out, or the server said not to come back. */
  final?: boolean;
}

export interface Options {
  /** The WebSocket constructor: the ws package in Node 20; the global one by default. */
  WebSocket?: unknown;
  /** Sent as the info query parameter: shown in presence (at most 256 bytes of JSON). */
  info?: unknown;
  /** Supplies the JWT for each connection (the token query parameter) and before it expires (the refresh op). */
  token?: () => Promise<{ token: string; expires?: number | Date }>;
  /** Milliseconds before the expiry to refresh; default a tenth of the token's life, at least 1 s. */
  refreshBefore?: number;
  /** Reconnect backoff, milliseconds: full jitter between 0 and min(maxDelay, minDelay * 2^attempt). */
  minDelay?: number;
  maxDelay?: number;
  /** Failed attempts in a row before giving up; 0: forever. */
  maxAttempts?: number;
  /** Milliseconds a publish, history or presence waits for its answer. */
  requestTimeout?: number;
}

export interface SubscribeHandlers {
  /** Recover from this position on the first subscribe (from a history answer): nothing between the two is missed. */
  from?: Position;
  onPublication?: (p: Publication) => void;
  /** The server could not replay what the subscription missed (reason: epoch_changed, offset_too_old, too_many): reload. */
  onUnrecovered?: (reason: string) => void;
  /** A resubscribe replayed everything missed (what follows is the replay, then live). */
  onRecovered?: () => void;
  /** Given either, the subscription asks for join and leave pushes. */
  onJoin?: (p: Presence) => void;
  onLeave?: (p: Presence) => void;
  onError?: (e: ServerError) => void;
}

export interface Subscription {
  readonly channel: string;
  /** The last publication delivered. */
  readonly position: Position;
  unsubscribe(): void;
}

export class WsgateClient {
  constructor(url: string, opts?: Options);
  readonly state: State["state"];
  onState: ((s: State) => void) | null;
  subscribe(channel: string, handlers?: SubscribeHandlers): Subscription;
  publish(channel: string, data: unknown): Promise<Position>;
  history(channel: string, opts?: { limit?: number; after?: Position }): Promise<Position & { publications: Publication[] }>;
  presence(channel: string): Promise<Presence[]>;
  presenceStats(channel: string): Promise<{ clients: number; users: number }>;
  close(code?: number, reason?: string): void;
}
