// fanout-client: the JavaScript client of fanout-core's WebSocket protocol (ES module, no
// dependencies; browsers, and Node.js 20 or later: pass `WebSocket` where there is no global).
//
// It keeps, per room (and for everyone), the seqs it has received; drops a frame whose seq
// or id it has seen; reconnects with capped, fully jittered backoff; pings under API
// Gateway's 10-minute idle cut and reconnects before its 2-hour cut. On every open it asks
// each room it holds a seq of for its history since that seq, and each room it holds none
// of (a first join) for its position (`joinRoom`, answered `fanout.joined`), so what was
// sent while it was away arrives once, in order. A history.end with complete: false means
// frames were no longer retained: the "gap" event tells the application, which reloads
// what it shows. While a room's history or position is on its way, the room's numbered
// live frames wait for it, then come in seq order: a client sees 4, 5, 6, not 6, 4, 5.
// Sends made while the socket is not open wait in a bounded queue, each with the `id` it
// was given, and go out, in order, once it is open again.

const EVERYONE = "";
const LATE_KEPT = 1000; // seqs skipped by a gap that are still taken if they arrive
const PROTOCOL = "fanout"; // offered with the token as a second subprotocol; echoed back
// How long the old connection of a refresh stays open once the new one is: API Gateway
// deletes a closed connection's rows, so a send still on its way on it would be refused.
const RETIRE_AFTER = 10000;

export class FanoutError extends Error {
  constructor(code, message, cause) {
    super(message);
    this.name = "FanoutError";
    this.error = code;
    if (cause !== undefined) this.cause = cause;
  }
}

class RoomState {
  constructor() {
    this.base = null; // every seq up to this one was received (null: nothing yet)
    this.above = new Set(); // seqs received past a gap
    this.late = new Set(); // seqs a gap skipped: taken if they come after all (bounded)
    this.epoch = null; // the epoch of the room's numbering
    this.waiting = false; // a history request or a join is out and its answer has not come
    this.held = []; // frames with a seq that came while waiting, in arrival order
    this.timer = null; // gives up waiting
  }

  // Hold everything up to seq as received, and what came past it.
  settle(seq) {
    this.base = this.base === null ? seq : Math.max(this.base, seq);
    for (const held of this.above) if (held <= this.base) this.above.delete(held);
    while (this.above.has(this.base + 1)) {
      this.base += 1;
      this.above.delete(this.base);
    }
  }

  // Skip a gap up to seq: what is missing there is taken if it still comes.
  skip(seq) {
    const from = Math.max(this.base === null ? seq : this.base, seq - LATE_KEPT) + 1;
    for (let missing = from; missing <= seq; missing += 1) {
      if (!this.above.has(missing)) this.late.add(missing);
    }
    while (this.late.size > LATE_KEPT) this.late.delete(this.late.values().next().value);
    this.settle(seq);
  }

  // True the first time seq arrives; false for a seq seen before.
  take(seq) {
    if (this.base === null) this.base = seq - 1;
    if (seq <= this.base) return this.late.delete(seq);
    if (this.above.has(seq)) return false;
    this.above.add(seq);
    this.settle(this.base);
    return true;
  }
}

function newId() {
  const crypto = globalThis.crypto;
  if (crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

// Stop hearing from a socket it is done with; an error it still reports (ws: "closed before
// the connection was established") is expected, and must not be an uncaught one.
function detach(socket) {
  socket.onopen = socket.onmessage = socket.onclose = null;
  socket.onerror = () => {};
}

function implementation(given) {
  const WebSocket = given || globalThis.WebSocket;
  if (typeof WebSocket !== "function") {
    throw new FanoutError(
      "no_websocket",
      "fanout-client: this runtime has no global WebSocket (Node.js 20 without " +
        "--experimental-websocket, for example). Pass one: " +
        'import WebSocket from "ws"; new FanoutClient(url, { WebSocket })',
    );
  }
  return WebSocket;
}

export class FanoutClient {
  // url: the WebSocket URL (wss://.../stage). Options: see fanout-client.d.ts.
  constructor(url, options = {}) {
    this.url = url;
    this.WebSocket = implementation(options.WebSocket);
    this.rooms = new Set(options.rooms || []);
    this.query = { ...(options.query || {}) };
    this.token = options.token;
    this.tokenTransport = options.tokenTransport || "query";
    this.tokenParam = options.tokenParam || "token";
    this.history = options.history !== false;
    this.reconnect = options.reconnect !== false;
    this.backoff = { base: 500, cap: 15000, ...(options.backoff || {}) };
    this.pingInterval = options.pingInterval ?? 4 * 60 * 1000;
    this.maxConnectionAge = options.maxConnectionAge ?? 110 * 60 * 1000;
    this.queueLimit = options.queueLimit ?? 100;
    this.idsKept = options.idsKept || 1000;
    this.resumeTimeout = options.resumeTimeout || 10000;
    // The callbacks of the first version of this client; `on(...)` is the typed way.
    this.onFrame = options.onFrame || (() => {});
    this.onGap = options.onGap || (() => {});
    this.onStatus = options.onStatus || (() => {});
    this.onError = options.onError || (() => {});
    this.listeners = new Map(); // event -> Set of listeners
    this.state = "idle";
    this.roomStates = new Map(); // room (EVERYONE for null) -> RoomState
    this.ids = new Set(); // the last idsKept frame ids, oldest first
    this.queue = []; // sends waiting for an open socket: {body}
    this.socket = null;
    this.attempts = 0;
    this.closed = true;
    this.generation = 0; // which connect an async step belongs to
    this.timer = null; // the next reconnect
    this.pingTimer = null;
    this.ageTimer = null;
    this.refreshDue = false; // the age is reached, and a resume is on its way
    this.retiring = new Map(); // old connections of refreshes -> the timer that closes each
  }

  // -- events -----------------------------------------------------------------------------

  on(event, listener) {
    let set = this.listeners.get(event);
    if (set === undefined) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  off(event, listener) {
    this.listeners.get(event)?.delete(listener);
  }

  emit(event, value) {
    for (const listener of [...(this.listeners.get(event) || [])]) {
      try {
        listener(value);
      } catch (error) {
        queueMicrotask(() => {
          throw error; // the application's bug, reported as uncaught, not swallowed
        });
      }
    }
  }

  setState(state) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.emit("state", { state, previous });
    if (state !== "connecting" && state !== "idle") this.onStatus(state);
  }

  fail(code, message, cause) {
    const error = new FanoutError(code, message, cause);
    this.emit("error", error);
    this.onError(error);
  }

  // -- the connection -----------------------------------------------------------------------

  connect() {
    if (!this.closed && (this.socket || this.state === "connecting")) return this;
    this.closed = false;
    clearTimeout(this.timer);
    this.open(++this.generation);
    return this;
  }

  async open(generation) {
    this.setState("connecting");
    let token;
    try {
      token = typeof this.token === "function" ? await this.token() : this.token;
    } catch (error) {
      if (generation !== this.generation) return;
      this.fail("token_failed", `the token function failed: ${error?.message || error}`, error);
      this.lost(null);
      return;
    }
    if (generation !== this.generation || this.closed) return; // closed meanwhile
    const url = new URL(this.url);
    for (const room of this.rooms) url.searchParams.append("room", room);
    for (const [name, value] of Object.entries(this.query)) url.searchParams.append(name, value);
    let protocols;
    if (token !== undefined && token !== null && token !== "") {
      if (this.tokenTransport === "protocol") protocols = [PROTOCOL, String(token)];
      else url.searchParams.set(this.tokenParam, String(token));
    }
    let socket;
    try {
      socket = protocols
        ? new this.WebSocket(url.toString(), protocols)
        : new this.WebSocket(url.toString());
    } catch (error) {
      this.fail("connect_failed", `cannot open ${this.url}: ${error?.message || error}`, error);
      this.lost(null);
      return;
    }
    this.socket = socket;
    socket.onopen = () => this.opened(socket);
    socket.onmessage = (message) => {
      if (this.socket === socket) this.receive(message.data);
    };
    socket.onclose = () => this.lost(socket);
    // Browsers follow an error with a close; some runtimes (Node.js 20) do not when the
    // connection could not be made.
    socket.onerror = () => {
      if (socket.readyState !== 1) this.lost(socket);
    };
  }

  opened(socket) {
    if (this.socket !== socket) return;
    this.attempts = 0;
    this.refreshDue = false;
    this.lastSent = Date.now();
    this.armPing();
    clearTimeout(this.ageTimer);
    // Before API Gateway's 2-hour cut: a new connection, resumed like any other.
    this.ageTimer = setTimeout(() => this.refresh(), this.maxConnectionAge);
    this.setState("open");
    this.resume();
    const queued = this.queue.splice(0);
    for (const body of queued) this.request(body);
    this.retire(RETIRE_AFTER);
  }

  // Open the next connection at once (no backoff) and close this one once it is open: the
  // old one takes no more sends, its frames still count, and the new one resumes. Not while
  // a room's history or position is on its way: it would come to the closed socket, and the
  // new one would ask again, each time, if answers take longer than maxConnectionAge.
  refresh() {
    const old = this.socket;
    if (old === null || this.closed) return;
    this.refreshDue = this.resuming();
    if (this.refreshDue) return; // release() refreshes once the answers came (or timed out)
    this.socket = null;
    clearTimeout(this.pingTimer);
    clearTimeout(this.ageTimer);
    detach(old);
    old.onmessage = (message) => this.receive(message.data, old);
    this.retiring.set(old, null);
    this.setState("closed");
    this.open(++this.generation);
  }

  // Close the old connections of refreshes, now or `after` ms from now; it takes no sends,
  // and its frames still count until then.
  retire(after = 0) {
    for (const [old, timer] of this.retiring) {
      if (after > 0 && timer !== null) continue; // its close is set already
      clearTimeout(timer);
      const close = () => {
        this.retiring.delete(old);
        detach(old);
        old.close(1000, "refresh");
      };
      if (after > 0) this.retiring.set(old, setTimeout(close, after));
      else close();
    }
  }

  lost(socket) {
    if (socket !== null && this.socket !== socket) return; // told already
    this.socket = null;
    clearTimeout(this.pingTimer);
    clearTimeout(this.ageTimer);
    if (socket !== null) {
      detach(socket);
    }
    // Live frames held for an answer that will not come on this socket go on now.
    for (const [key, state] of this.roomStates) if (state.waiting) this.release(key, state);
    if (this.closed) return;
    this.retire(RETIRE_AFTER); // an old connection's sends may still be on their way
    this.setState("closed");
    if (this.reconnect) this.reconnectLater();
  }

  reconnectLater() {
    const ceiling = Math.min(this.backoff.cap, this.backoff.base * 2 ** this.attempts);
    const delay = Math.random() * ceiling; // "full jitter"
    this.attempts += 1;
    this.setState("reconnecting");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (!this.closed) this.open(++this.generation);
    }, delay);
  }

  armPing() {
    clearTimeout(this.pingTimer);
    if (!(this.pingInterval > 0)) return;
    const due = this.lastSent + this.pingInterval - Date.now();
    this.pingTimer = setTimeout(() => {
      if (Date.now() - this.lastSent >= this.pingInterval - 5) this.request({ action: "ping" });
      else this.armPing();
    }, Math.max(0, due));
  }

  close() {
    this.closed = true;
    this.generation += 1;
    clearTimeout(this.timer);
    clearTimeout(this.pingTimer);
    clearTimeout(this.ageTimer);
    this.retire();
    for (const [key, state] of this.roomStates) if (state.waiting) this.release(key, state);
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      detach(socket);
      socket.close(1000);
    }
    this.setState("closed");
  }

  // -- rooms and resume ---------------------------------------------------------------------

  // Ask every room it holds seqs of for what came after them, and every room it holds none
  // of for its position; hold the room's live frames until the answer.
  resume() {
    for (const [key, state] of this.roomStates) {
      const room = key === EVERYONE ? null : key;
      const asks = state.base !== null && (room === null || this.rooms.has(room));
      if (asks && this.history) this.askHistory(key, state);
      else if (state.waiting) this.release(key, state);
    }
    if (!this.history) return;
    for (const room of this.rooms) {
      const state = this.roomState(room);
      if (state.base === null && this.request({ action: "joinRoom", room })) this.hold(room, state);
    }
  }

  askHistory(key, state) {
    const room = key === EVERYONE ? null : key;
    const request = { action: "history", room, since: state.base };
    if (state.epoch !== null) request.epoch = state.epoch;
    if (this.request(request)) this.hold(key, state);
  }

  hold(key, state) {
    state.waiting = true;
    clearTimeout(state.timer);
    // An answer that never comes (a lost connection, a refused request) must not hold
    // live frames for ever: past the timeout they are delivered as they are.
    state.timer = setTimeout(() => this.release(key, state), this.resumeTimeout);
  }

  // Stop holding: pass what was held on, in seq order, each once.
  release(key, state) {
    state.waiting = false;
    clearTimeout(state.timer);
    state.timer = null;
    const held = state.held.sort((a, b) => a.seq - b.seq);
    state.held = [];
    for (const frame of held) this.accept(key, frame);
    if (this.refreshDue && !this.resuming()) setTimeout(() => this.refreshDue && this.refresh());
  }

  // True while a room's history or position is on its way.
  resuming() {
    for (const state of this.roomStates.values()) if (state.waiting) return true;
    return false;
  }

  join(room) {
    this.rooms.add(room);
    const state = this.roomState(room);
    if (!this.request({ action: "joinRoom", room })) return false;
    if (this.history && state.base === null) this.hold(room, state);
    return true;
  }

  leave(room) {
    this.rooms.delete(room);
    const state = this.roomStates.get(room);
    if (state !== undefined) {
      this.release(room, state);
      this.roomStates.delete(room); // a later join starts from the room's position then
    }
    return this.request({ action: "leaveRoom", room });
  }

  presence(room) {
    return this.request({ action: "presence", room });
  }

  // -- frames -------------------------------------------------------------------------------

  // A frame from the connection, or from `old`, one a refresh retires.
  receive(raw, old = null) {
    let frame;
    try {
      frame = JSON.parse(typeof raw === "string" ? raw : String(raw));
    } catch {
      return;
    }
    if (frame === null || typeof frame !== "object") return;
    if ("error" in frame && !("id" in frame)) {
      // The answer does not say which request failed: if a history request or a join did,
      // its answer will not come, so held frames go on now (in order, none lost). An old
      // connection had none out (a refresh waits for them): its errors answer sends.
      if (old === null) {
        for (const [key, state] of this.roomStates) if (state.waiting) this.release(key, state);
      }
      this.emit("error", frame);
      this.onError(frame);
      // Its rows are gone (a sweep, a 410 seen by a fan-out): only a new connection helps.
      if (frame.error === "not_connected" && this.socket && old === null) this.refresh();
      return;
    }
    const key = frame.room === null || frame.room === undefined ? EVERYONE : frame.room;
    if (frame.event === "fanout.joined") {
      const state = this.roomState(key);
      if (state.base === null && typeof frame.seq === "number") {
        state.base = frame.seq; // everything after it comes, live or by a resume
        state.epoch = frame.epoch;
      }
      this.release(key, state);
      this.emit("joined", frame);
      return;
    }
    if (frame.event === "history.end") {
      const state = this.roomState(key);
      if (state.epoch !== null && frame.epoch !== state.epoch) {
        state.base = null; // the room's numbering started again: so does what it holds
        state.above.clear();
        state.late.clear();
      }
      state.epoch = frame.epoch;
      // The history came before this end; live frames held meanwhile go after it, in order.
      this.release(key, state);
      // Complete: every frame up to frame.seq came before this end. Not complete: what is
      // missing is gone for good; the application hears of it, and the client moves on.
      if (state.base === null) state.settle(frame.seq);
      else if (!frame.complete) state.skip(frame.seq);
      this.emit("history.end", frame);
      if (!frame.complete) {
        const room = key === EVERYONE ? null : key;
        this.emit("gap", { room, end: frame });
        this.onGap(room, frame);
      }
      return;
    }
    if (typeof frame.seq === "number" && this.roomStates.get(key)?.waiting) {
      this.roomStates.get(key).held.push(frame);
      return;
    }
    this.accept(key, frame);
  }

  // Pass a frame on unless its id or seq was seen.
  accept(key, frame) {
    if (typeof frame.id === "string") {
      if (this.ids.has(frame.id)) return;
      this.ids.add(frame.id);
      if (this.ids.size > this.idsKept) this.ids.delete(this.ids.values().next().value);
    }
    if (typeof frame.seq === "number" && !this.roomState(key).take(frame.seq)) return;
    this.onFrame(frame);
    const presence = typeof frame.event === "string" && /^presence([.:]|$)/.test(frame.event);
    this.emit(presence ? "presence" : "message", frame);
  }

  roomState(key) {
    let state = this.roomStates.get(key);
    if (state === undefined) {
      state = new RoomState();
      this.roomStates.set(key, state);
    }
    return state;
  }

  // The last seq of a room (null: everyone) received without a gap, or null.
  lastSeq(room = null) {
    const state = this.roomStates.get(room === null ? EVERYONE : room);
    return state === undefined ? null : state.base;
  }

  // -- sending ------------------------------------------------------------------------------

  request(body) {
    if (this.socket && this.socket.readyState === 1) {
      this.socket.send(JSON.stringify(body));
      this.lastSent = Date.now();
      this.armPing();
      return true;
    }
    return false;
  }

  // Sent now if open, else queued (up to queueLimit) with its id; returns the id.
  enqueue(body) {
    if (body.id === undefined || body.id === null) body.id = newId();
    if (this.request(body)) return body.id;
    if (this.queue.length >= this.queueLimit) {
      throw new FanoutError("queue_full", `the offline queue is full (${this.queueLimit} sends)`);
    }
    this.queue.push(body);
    return body.id;
  }

  send(room, data, { event, id } = {}) {
    const body = { action: "sendMessage", room, data };
    if (event) body.event = event;
    if (id) body.id = id;
    return this.enqueue(body);
  }

  sendText(room, text, { id } = {}) {
    const body = { action: "sendMessage", room, text };
    if (id) body.id = id;
    return this.enqueue(body);
  }

  // The sends waiting for an open socket, oldest first.
  get queued() {
    return this.queue.map((body) => ({ ...body }));
  }
}
