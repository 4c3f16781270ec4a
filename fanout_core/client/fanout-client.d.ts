// Types of fanout-client.mjs: the frames of fanout-core's protocol (schema/protocol.json in
// the Python package) and the client's options, events and methods.

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A message fanned out to a room, a user, chosen connections or everyone. */
export interface MessageFrame {
  id: string;
  event: string;
  /** null for everyone, a user or chosen connections. */
  room: string | null;
  /** The sender's connection id; null from the backend. */
  from: string | null;
  /** A text message's text. */
  body?: string;
  /** A data message's data. */
  data?: Json;
  /** Its number in its room's (or everyone's) history, with history on. */
  seq?: number;
}

/** presence.join and presence.leave (FANOUT_PRESENCE_EVENTS), and the answer to presence(). */
export interface PresenceFrame extends MessageFrame {
  members?: { connection_id: string; principal: string | null }[];
  count?: number;
  part?: number;
  parts?: number;
}

/** The answer to joinRoom with history on: where the room stood when the client joined. */
export interface JoinedFrame {
  id: string;
  event: "fanout.joined";
  room: string;
  from: null;
  seq: number;
  epoch: number;
}

/** The end of the answer to a history request. */
export interface HistoryEnd {
  id: string;
  event: "history.end";
  room: string | null;
  from: null;
  /** The room's latest seq. */
  seq: number;
  /** When the room's numbering started (epoch ms). */
  epoch: number;
  /** false: frames after the client's seq are no longer retained. */
  complete: boolean;
}

/** A refused request ({error, message} from the API), or the client's own trouble:
 *  token_failed, connect_failed, queue_full, no_websocket. */
export interface ErrorAnswer {
  error: string;
  message: string;
  /** rate_limited: seconds until a send would pass. */
  retry_after?: number;
}

export type ConnectionState = "idle" | "connecting" | "open" | "closed" | "reconnecting";

export interface FanoutEvents {
  /** Each message the first time it arrives, in seq order within a resuming room. */
  message: MessageFrame;
  /** presence.join, presence.leave and presence frames. */
  presence: PresenceFrame;
  /** A room's position, from its joinRoom answer. */
  joined: JoinedFrame;
  /** The end of a room's history. */
  "history.end": HistoryEnd;
  /** A history.end with complete: false: reload what the room shows. */
  gap: { room: string | null; end: HistoryEnd };
  error: ErrorAnswer;
  state: { state: ConnectionState; previous: ConnectionState };
}

/** What the client needs of a WebSocket: the browser's, Node.js 22's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** A token, or a function (sync or async) called at every connect for a fresh one. */
export type TokenSource = string | (() => string | null | undefined | Promise<string | null | undefined>);

export interface FanoutClientOptions {
  /** Rooms to join on every connect (?room=). */
  rooms?: Iterable<string>;
  /** Sign-in: sent as the `token` query parameter, or as the subprotocol `fanout, <token>`. */
  token?: TokenSource;
  /** "query" (default) or "protocol" (Sec-WebSocket-Protocol: keeps it out of access logs). */
  tokenTransport?: "query" | "protocol";
  /** The query parameter's name (default "token"; FANOUT_JWT_QUERY_PARAM on the server). */
  tokenParam?: string;
  /** More query parameters on every connect. */
  query?: Record<string, string>;
  /** The WebSocket implementation (default: the global one; Node.js 20: pass `ws`'s). */
  WebSocket?: WebSocketConstructor;
  /** Ask joined rooms' positions and resume them (default true); false where the API keeps no history. */
  history?: boolean;
  /** Reconnect after a loss (default true). */
  reconnect?: boolean;
  /** Reconnect delays in ms: a random delay up to min(cap, base * 2^attempt). */
  backoff?: { base?: number; cap?: number };
  /** ms without a send before a ping (default 240000, under API Gateway's 10-minute idle cut; 0: never). */
  pingInterval?: number;
  /** ms before the client opens a new connection (default 6600000, under the 2-hour cut). */
  maxConnectionAge?: number;
  /** Sends kept while not open (default 100); past it send() throws a FanoutError "queue_full". */
  queueLimit?: number;
  /** How many frame ids it remembers to drop repeats (default 1000). */
  idsKept?: number;
  /** ms it holds a room's live frames waiting for its history or position (default 10000). */
  resumeTimeout?: number;
  /** The first version's callbacks; `on(...)` is the typed way. */
  onFrame?: (frame: MessageFrame) => void;
  onGap?: (room: string | null, end: HistoryEnd) => void;
  onStatus?: (status: "open" | "closed" | "reconnecting") => void;
  onError?: (answer: ErrorAnswer) => void;
}

export interface SendOptions {
  /** The idempotency key: a resend with the same id is fanned out once (default: a new UUID). */
  id?: string;
}

export declare class FanoutError extends Error implements ErrorAnswer {
  readonly error: string;
  constructor(code: string, message: string, cause?: unknown);
}

export declare class FanoutClient {
  constructor(url: string, options?: FanoutClientOptions);
  readonly url: string;
  readonly state: ConnectionState;
  readonly rooms: Set<string>;
  /** The sends waiting for an open socket, oldest first (copies). */
  readonly queued: Record<string, Json>[];
  on<K extends keyof FanoutEvents>(event: K, listener: (value: FanoutEvents[K]) => void): () => void;
  off<K extends keyof FanoutEvents>(event: K, listener: (value: FanoutEvents[K]) => void): void;
  connect(): this;
  close(): void;
  join(room: string): boolean;
  leave(room: string): boolean;
  presence(room: string): boolean;
  /** Send data (any JSON) to a room (null: everyone); returns its id. */
  send(room: string | null, data: Json, options?: SendOptions & { event?: string }): string;
  sendText(room: string | null, text: string, options?: SendOptions): string;
  /** Any request body, sent if open (true), else dropped (false). */
  request(body: Record<string, Json>): boolean;
  /** The last seq of a room (null: everyone) received without a gap, or null. */
  lastSeq(room?: string | null): number | null;
}
