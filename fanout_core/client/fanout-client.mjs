// fanout-client.mjs: a reference client for fanout-core's WebSocket protocol (ES module, no
// dependencies; browsers, and Node.js with a global WebSocket).
//
// It keeps, per room (and for everyone), the seqs it has received; drops a frame whose seq
// or id it has seen; reconnects with capped, fully jittered backoff; and on every (re)connect
// asks each room's history since the last seq it holds without a gap, so what was sent
// while it was away arrives once, in order. A history.end with complete: false means frames
// were no longer retained: onGap tells the application, which reloads what it shows.
// While a room's history is on its way, the room's live frames wait for its history.end and
// then come after the history, in seq order: a client sees 4, 5, 6, not 6, 4, 5.

const EVERYONE = "";

class RoomState {
  constructor() {
    this.base = null; // every seq up to this one was received (null: nothing yet)
    this.above = new Set(); // seqs received past a gap
    this.epoch = null; // the epoch of the room's numbering, from history.end
    this.resuming = false; // a history request is out and its history.end has not come
    this.held = []; // frames with a seq that came while resuming, in arrival order
    this.timer = null; // gives up waiting for the history.end
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

  // True the first time seq arrives; false for a seq seen before.
  take(seq) {
    if (this.base === null) this.base = seq - 1;
    if (seq <= this.base || this.above.has(seq)) return false;
    this.above.add(seq);
    this.settle(this.base);
    return true;
  }
}

export class FanoutClient {
  // url: the WebSocket URL (wss://.../stage). Options:
  //   rooms: rooms to join on connect (?room=); onFrame(frame): each new frame;
  //   onGap(room, end): history could not fill a gap; onStatus(status): "open", "closed",
  //   "reconnecting"; onError(answer): an error answer ({error, message}) to a request;
  //   backoff: {base, cap} in ms; idsKept: how many frame ids to remember;
  //   resumeTimeout: ms to hold a room's live frames for its history.end;
  //   WebSocket: the implementation (default: the global one).
  constructor(url, options = {}) {
    this.url = url;
    this.rooms = new Set(options.rooms || []);
    this.onFrame = options.onFrame || (() => {});
    this.onGap = options.onGap || (() => {});
    this.onStatus = options.onStatus || (() => {});
    this.onError = options.onError || (() => {});
    this.backoff = { base: 500, cap: 15000, ...(options.backoff || {}) };
    this.idsKept = options.idsKept || 1000;
    this.resumeTimeout = options.resumeTimeout || 10000;
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    this.state = new Map(); // room (EVERYONE for null) -> RoomState
    this.ids = new Set(); // the last idsKept frame ids, oldest first
    this.socket = null;
    this.attempts = 0;
    this.closed = false;
    this.timer = null;
  }

  connect() {
    this.closed = false;
    const url = new URL(this.url);
    for (const room of this.rooms) url.searchParams.append("room", room);
    const socket = new this.WebSocket(url.toString());
    this.socket = socket;
    socket.onopen = () => {
      this.attempts = 0;
      this.onStatus("open");
      this.resume();
    };
    socket.onmessage = (message) => this.receive(message.data);
    const lost = () => {
      if (this.socket !== socket) return; // told already (an error, then its close)
      this.socket = null;
      this.onStatus("closed");
      if (!this.closed) this.reconnectLater();
    };
    socket.onclose = lost;
    // Browsers follow an error with a close; some runtimes (Node.js 20) do not when the
    // connection could not be made.
    socket.onerror = () => {
      if (socket.readyState !== 1) lost();
    };
  }

  // Ask every room it holds seqs of for what came after them, and hold the room's live
  // frames until the answer's history.end.
  resume() {
    for (const [key, state] of this.state) {
      const room = key === EVERYONE ? null : key;
      const request = { action: "history", room, since: state.base };
      if (state.epoch !== null) request.epoch = state.epoch;
      const asks = state.base !== null && (room === null || this.rooms.has(room));
      if (asks && this.request(request)) this.hold(key, state);
      else this.release(key, state);
    }
  }

  hold(key, state) {
    state.resuming = true;
    clearTimeout(state.timer);
    // A history.end that never comes (a lost connection, a refused request) must not hold
    // live frames for ever: past the timeout they are delivered as they are.
    state.timer = setTimeout(() => this.release(key, state), this.resumeTimeout);
  }

  // Stop holding: pass what was held on, in seq order, each once.
  release(key, state) {
    state.resuming = false;
    clearTimeout(state.timer);
    state.timer = null;
    const held = state.held.sort((a, b) => a.seq - b.seq);
    state.held = [];
    for (const frame of held) this.accept(key, frame);
  }

  reconnectLater() {
    const ceiling = Math.min(this.backoff.cap, this.backoff.base * 2 ** this.attempts);
    const delay = Math.random() * ceiling; // "full jitter"
    this.attempts += 1;
    this.onStatus("reconnecting");
    this.timer = setTimeout(() => this.connect(), delay);
  }

  receive(raw) {
    let frame;
    try {
      frame = JSON.parse(raw);
    } catch {
      return;
    }
    if (frame === null || typeof frame !== "object") return;
    if ("error" in frame && !("id" in frame)) {
      // The answer does not say which request failed: if a history request did, its
      // history.end will not come, so held frames go on now (in order, none lost).
      for (const [key, state] of this.state) if (state.resuming) this.release(key, state);
      this.onError(frame);
      return;
    }
    const key = frame.room === null || frame.room === undefined ? EVERYONE : frame.room;
    if (frame.event === "history.end") {
      const state = this.roomState(key);
      if (state.epoch !== null && frame.epoch !== state.epoch) {
        state.base = null; // the room's numbering started again: so does what it holds
        state.above.clear();
      }
      state.epoch = frame.epoch;
      // The history came before this end; live frames held meanwhile go after it, in order.
      this.release(key, state);
      // Complete: every frame up to frame.seq came before this end. Not complete: what is
      // missing is gone for good; the application hears of it, and the client moves on.
      if (state.base === null || !frame.complete) state.settle(frame.seq);
      if (!frame.complete) this.onGap(key === EVERYONE ? null : key, frame);
      return;
    }
    if (typeof frame.seq === "number" && this.state.get(key)?.resuming) {
      this.state.get(key).held.push(frame);
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
  }

  roomState(key) {
    let state = this.state.get(key);
    if (state === undefined) {
      state = new RoomState();
      this.state.set(key, state);
    }
    return state;
  }

  // The last seq of a room (null: everyone) received without a gap, or null.
  lastSeq(room = null) {
    const state = this.state.get(room === null ? EVERYONE : room);
    return state === undefined ? null : state.base;
  }

  request(body) {
    if (this.socket && this.socket.readyState === 1) {
      this.socket.send(JSON.stringify(body));
      return true;
    }
    return false;
  }

  send(room, data, { event, id } = {}) {
    const body = { action: "sendMessage", room, data };
    if (event) body.event = event;
    if (id) body.id = id;
    return this.request(body);
  }

  sendText(room, text, { id } = {}) {
    const body = { action: "sendMessage", room, text };
    if (id) body.id = id;
    return this.request(body);
  }

  join(room) {
    this.rooms.add(room);
    return this.request({ action: "joinRoom", room });
  }

  leave(room) {
    this.rooms.delete(room);
    return this.request({ action: "leaveRoom", room });
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    for (const [key, state] of this.state) if (state.resuming) this.release(key, state);
    if (this.socket) this.socket.close();
  }
}
