// fanout console: the feed of `fanout serve` (/_console/events), test clients in the page and
// the demo's stages. No dependencies but the packaged reference client.
import { FanoutClient } from "/_console/fanout-client.mjs";

const $ = (id) => document.getElementById(id);
const KEEP = { wire: 400, invocations: 300, fanouts: 120, workers: 120 };
const state = {
  config: {},
  routes: [],
  rows: new Map(), // "pk sk" -> row
  sockets: new Map(), // connection id -> {state, code}
  principals: new Map(), // connection id -> principal from $connect
  tags: new Map(), // client tag -> connection id
  clients: [], // page clients, in the order opened
  events: [], // recent feed events, for the demo's waits
  waiters: [],
};
let feed = null;
let actionIds = 0;
const replies = new Map();

// -- helpers ----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false });
const short = (id) => (id ? String(id) : "");
function labelOf(cid) {
  const client = state.clients.find((c) => c.cid === cid);
  return client ? client.name : "";
}
function who(cid) {
  const name = labelOf(cid);
  return name ? `${name}·${short(cid).slice(0, 6)}` : short(cid) || "–";
}
// A key's long parts (connection ids, idempotency keys) cut to their first 6 characters, and
// a zero-padded number to its digits after the zeros, so a row stays on one line; the whole
// key is the cell's title, shown on hover.
function shortPart(part) {
  if (part.length <= 12) return part;
  if (/^0+\d+$/.test(part)) return `0…${part.replace(/^0+/, "") || "0"}`;
  return `${part.slice(0, 6)}…`;
}
function shortKey(key) {
  return String(key).split("#").map(shortPart).join("#");
}
function keyCell(key) {
  return el("td", { class: "key", title: key }, el("span", { text: shortKey(key) }));
}
function cut(text, most = 32) {
  return text.length > most ? `${text.slice(0, most - 1)}…` : text;
}
function prepend(list, node, keep) {
  list.prepend(node);
  while (list.children.length > keep) list.lastElementChild.remove();
}
function fresh(node) {
  node.classList.add("fresh");
  setTimeout(() => node.classList.remove("fresh"), 1700);
  return node;
}

// -- the feed ---------------------------------------------------------------------------

function connectFeed() {
  // The run's key, from the URL `fanout serve` printed: the feed refuses a socket without it.
  const key = new URLSearchParams(location.search).get("key") || "";
  feed = new WebSocket(`ws://${location.host}/_console/events?key=${encodeURIComponent(key)}`);
  feed.onopen = () => {
    $("feed-state").textContent = "live";
    $("feed-state").classList.add("live");
  };
  feed.onclose = () => {
    $("feed-state").textContent = "feed lost: is fanout serve running? retrying…";
    $("feed-state").classList.remove("live");
    setTimeout(connectFeed, 1500);
  };
  feed.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.kind === "reply") {
      const settle = replies.get(event.id);
      replies.delete(event.id);
      if (settle) settle(event);
      return;
    }
    handle(event);
  };
}

function act(body) {
  return new Promise((resolve) => {
    const id = ++actionIds;
    replies.set(id, resolve);
    feed.send(JSON.stringify({ id, ...body }));
  });
}

function handle(event) {
  const handlers = {
    hello, invoke, rows, fanout, worker, wire, api, socket, authorize, log, metrics,
  };
  const handler = handlers[event.kind];
  if (handler) handler(event);
  state.events.push(event);
  if (state.events.length > 2000) state.events.splice(0, 500);
  for (const waiter of [...state.waiters]) waiter();
}

function hello(event) {
  state.config = event.config || {};
  state.routes = event.routes || [];
  state.rows = new Map((event.rows || []).map((row) => [row.key, row]));
  $("ws-url").textContent = wsUrl();
  $("fact-table").textContent = state.config.table || "?";
  $("fact-strategy").textContent = state.config.strategy || "?";
  $("fact-policy").textContent = state.config.policy || "open";
  $("rows-table").textContent = state.config.table ? `· ${state.config.table}` : "";
  const routes = $("routes");
  routes.replaceChildren(...state.routes.map((route) =>
    el("li", { "data-route": route, "aria-label": `route ${route}` }, route, el("small", { text: "" }))));
  // The SQS worker runs only with a queue (sqs_batched): its panel shows only then.
  const queued = Boolean(state.config.queue_url);
  if (queued) routes.append(el("li", { "data-route": "sqs_worker" }, "sqs_worker", el("small")));
  $("workers-part").hidden = !queued;
  // `fanout serve --dev-auth`: a client may sign in as a principal.
  $("open-principal-label").hidden = !state.config.dev_auth;
  renderRows();
  renderConnections();
  if (!state.greeted && (event.demo || new URLSearchParams(location.search).has("demo"))) openDemo(event.demo || {});
  state.greeted = true;
}

const wsUrl = () => `ws://${location.host}/${state.config.stage || "local"}`;

function invoke(event) {
  if (event.route === "$connect") {
    if (event.principal) state.principals.set(event.connection_id, event.principal);
    const tag = ((event.query || {}).client || [])[0];
    if (tag) state.tags.set(tag, event.connection_id);
    if (!state.sockets.has(event.connection_id) || event.status < 300) {
      state.sockets.set(event.connection_id, { state: event.status < 300 ? "open" : "refused" });
    }
    for (const client of state.clients) client.render();
  }
  light(event.route, `${event.status} · ${event.ms} ms`);
  const error = event.status >= 300 && event.body ? el("div", { class: "s4" }, event.body) : null;
  // Its metrics on a row of their own under it, across the table: the columns keep their width.
  const measured = metricsRow(event.metrics);
  if (measured) prepend($("invocations"), measured, 2 * KEEP.invocations);
  prepend($("invocations"), fresh(el("tr", { "data-route": event.route },
    el("td", {}, el("time", { text: clock(event.t) })),
    el("td", { class: "nowrap", text: event.route }),
    el("td", { class: "nowrap", text: who(event.connection_id) }),
    el("td", { class: `s${String(event.status)[0]}` }, String(event.status), error),
    el("td", { class: "num", text: event.ms }))), 2 * KEEP.invocations);
  renderConnections();
}

// An invocation's metrics, as its EMF document carries them: counts, and for arrays
// (FanoutTime, PostLatency, AudienceSize) how many values and their median.
function metricsRow(values) {
  if (!values || !Object.keys(values).length) return null;
  const shown = Object.entries(values).map(([name, value]) => {
    if (!Array.isArray(value)) return `${name} ${value}`;
    const sorted = [...value].sort((x, y) => x - y);
    return `${name} ×${value.length} p50 ${sorted[Math.floor(sorted.length / 2)]}`;
  });
  return el("tr", { class: "metrics" },
    el("td", { colspan: 5, class: "muted", "data-testid": "metrics", text: shown.join(" · ") }));
}

// The feed's metrics events (a publish's, a worker's too): kept in state.events only.
function metrics() {}

function light(route, detail) {
  const chip = document.querySelector(`#routes li[data-route="${CSS.escape(route)}"]`);
  if (!chip) return;
  chip.querySelector("small").textContent = detail;
  chip.classList.add("lit");
  clearTimeout(chip.timer);
  chip.timer = setTimeout(() => chip.classList.remove("lit"), 900);
}

function rows(event) {
  for (const key of event.delete || []) state.rows.delete(key);
  for (const row of event.upsert || []) state.rows.set(row.key, { ...row, fresh: true });
  renderRows();
  renderConnections();
}

// A row's other attributes, each "name=value" kept on one line (a long value cut, whole on
// hover): the cell wraps between them, never inside one.
function detailOf(row) {
  const skip = new Set(["pk", "sk", "key", "type", "expires_at", "gsi1pk", "gsi1sk", "endpoint", "fresh", "markedExpired"]);
  return Object.entries(row)
    .filter(([name, value]) => !skip.has(name) && !(name === "connection_id" && row.pk.includes(value)))
    .map(([name, value]) => {
      const text = name.endsWith("_at") && typeof value === "number"
        ? clock(value / 1000) : typeof value === "string" ? value : JSON.stringify(value);
      const shown = cut(text);
      return el("span", { class: "pair", title: shown === text ? null : text }, `${name}=${shown}`);
    });
}

function renderRows() {
  const now = Date.now() / 1000;
  const sorted = [...state.rows.values()].sort((a, b) => a.key.localeCompare(b.key));
  $("table-rows").replaceChildren(...sorted.map((row) => {
    const expired = typeof row.expires_at === "number" && row.expires_at <= now;
    const tr = el("tr", { class: expired ? "expired" : "", "data-key": row.key, "data-connection": row.connection_id || "" },
      el("td", { class: "nowrap", text: row.type || "" }),
      keyCell(row.pk),
      keyCell(row.sk),
      el("td", { class: "detail" }, ...detailOf(row)),
      el("td", { class: "nowrap" }, row.expires_at ? clock(row.expires_at) : "",
        expired ? el("span", { class: "badge warn", text: "expired" }) : null));
    if (row.fresh) { fresh(tr); row.fresh = false; }
    return tr;
  }));
  $("row-count").textContent = String(sorted.length);
}
setInterval(() => { // an expiry happens without an event: mark rows as their TTL passes
  const now = Date.now() / 1000;
  if ([...state.rows.values()].some((r) => r.expires_at <= now && !r.markedExpired)) {
    for (const row of state.rows.values()) if (row.expires_at <= now) row.markedExpired = true;
    renderRows();
  }
}, 1000);

function connectionRows() {
  const byId = new Map();
  for (const row of state.rows.values()) {
    if (!row.connection_id) continue;
    const entry = byId.get(row.connection_id) || { rooms: [], row: null };
    if (row.type === "connection" || row.sk === "CONN") entry.row = row;
    if (row.room !== undefined) entry.rooms.push(row.room);
    byId.set(row.connection_id, entry);
  }
  return byId;
}

function renderConnections() {
  const byId = connectionRows();
  for (const [cid, sock] of state.sockets) if (sock.state === "open" && !byId.has(cid)) byId.set(cid, { rooms: [], row: null });
  const items = [...byId.entries()];
  $("connections").replaceChildren(...items.map(([cid, entry]) => {
    const sock = state.sockets.get(cid);
    const live = sock ? sock.state : "unknown";
    const stateText = live === "open" ? (entry.row ? "open" : "open · no row") : entry.row ? `${live} · row left` : live;
    const principal = (entry.row && entry.row.principal) || state.principals.get(cid) || "–";
    return el("tr", { "data-connection": cid },
      el("td", { class: "key", title: cid }, el("span", { text: cid })), el("td", { text: labelOf(cid) || "–" }),
      el("td", { text: principal }), el("td", { text: entry.rooms.sort().join(", ") || "–" }),
      el("td", { class: live === "open" ? "s2" : "s4", text: stateText }));
  }));
  $("conn-count").textContent = String(items.length);
}

// "name value" pairs, each on one line; the list wraps between them.
function nums(pairs) {
  return pairs.filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => el("span", {}, `${k} `, el("b", { text: String(v) })));
}
const ms = (seconds) => `${(seconds * 1000).toFixed(1)} ms`;

// A history request's answer: the frames replayed to the one connection that asked, then
// history.end (unless a post failed first).
function historyReply(event) {
  const ended = !event.gone && !event.failed;
  const frames = Math.max(0, event.delivered - (ended ? 1 : 0));
  const node = el("li", { "data-kind": "history" },
    el("div", { class: "head" }, `${clock(event.t)} history reply → ${who(event.connection_id)}`,
      el("span", { class: "muted", text: ` · ${event.room ? `room ${event.room}` : "everyone"}` })),
    el("div", { class: "nums" }, ...nums([
      ["replayed", `${frames} frame${frames === 1 ? "" : "s"}`],
      ["then", ended ? "history.end" : null],
      ["gone", event.gone || null], ["failed", event.failed || null],
      ["read units", event.read_units || null], ["time", event.elapsed_seconds ? ms(event.elapsed_seconds) : null],
    ])));
  prepend($("fanouts"), fresh(node), KEEP.fanouts);
}

function fanout(event) {
  if (event.source === "history") {
    historyReply(event);
    return;
  }
  const gone = event.gone_ids && event.gone_ids.length
    ? el("div", { class: "gone" }, "410 → deleted ", el("b", { text: event.gone_ids.map((id) => `${labelOf(id)} ${id}`.trim()).join(", ") }), "'s rows") : null;
  const by = event.source === "publish" ? "publish box" : `${event.route || event.source} ${who(event.connection_id)}`;
  const node = el("li", { "data-kind": event.source },
    el("div", { class: "head" }, `${clock(event.t)} ${event.strategy} → ${event.audience || "everyone"}`,
      el("span", { class: "muted", text: ` · from ${by}` }),
      // A repeated idempotency key: the first publish's result, nothing sent again.
      event.duplicate ? el("span", { class: "badge warn", text: "duplicate: nothing sent" }) : null),
    el("div", { class: "nums" }, ...nums([
      ["audience", event.items_returned], ["delivered", event.delivered], ["gone", event.gone],
      ["failed", event.failed], ["retried", event.retried], ["throttled", event.throttled || null],
      ["read units", event.read_units], ["reads", event.dynamodb_requests],
      ["queued", event.queue_messages || null], ["enqueued", event.enqueued || null],
      ["requeued", event.requeued || null], ["seq", event.seq],
      ["time", event.elapsed_seconds ? ms(event.elapsed_seconds) : null],
    ])),
    event.failure_reasons && Object.keys(event.failure_reasons).length
      ? el("div", { class: "s4", text: `failures ${JSON.stringify(event.failure_reasons)}` }) : null,
    gone);
  if (event.gone) node.classList.add("has-gone");
  prepend($("fanouts"), fresh(node), KEEP.fanouts);
}

function worker(event) {
  light("sqs_worker", `${event.records} msg · ${event.ms} ms`);
  const node = el("li", {},
    el("div", { class: "head" }, `${clock(event.t)} sqs_worker · ${event.records} message(s)`,
      el("span", { class: event.failed ? "s4" : "s2", text: ` · ${event.failed} failed` }),
      el("span", { class: "muted", text: ` · ${event.ms} ms` })),
    ...(event.messages || []).map((m) => el("div", { class: "nums", text: m.body })));
  prepend($("workers"), fresh(node), KEEP.workers);
}

function wireLine(event, dirClass, dir, ...parts) {
  if ($("wire-pause").checked) return;
  prepend($("wire"), el("li", { "data-kind": event.kind, "data-connection": event.connection_id || "" },
    el("time", { text: clock(event.t) }), " ", el("span", { class: `dir ${dirClass}`, text: dir }), " ", ...parts), KEEP.wire);
}

function wire(event) {
  if (event.dir === "in") wireLine(event, "in", "▸ in", `${who(event.connection_id)} → API Gateway, route ${event.route}: `, el("span", { class: "frame", text: event.frame }));
  else wireLine(event, "out", "◂ out", `API Gateway → ${who(event.connection_id)} (${event.via}): `, el("span", { class: "frame", text: event.frame }));
}

function api(event) {
  const status = el("span", { class: `s${String(event.status)[0]}`, text: event.status === 0 ? "no answer" : String(event.status) });
  wireLine(event, "api", "⇢ api", `${event.method} @connections/${who(event.connection_id)} → `, status, " ",
    event.frame ? el("span", { class: "frame", text: event.frame }) : "",
    event.answer ? el("span", { class: "err", text: ` ${event.answer}` }) : "");
}

function socket(event) {
  const known = state.sockets.get(event.connection_id) || {};
  state.sockets.set(event.connection_id, { ...known, state: event.state === "closed" ? (event.code === 1006 ? "dropped" : "closed") : known.state || event.state, code: event.code });
  if (event.state === "closed") wireLine(event, "sock", "✕ close", `${who(event.connection_id)} · ${event.code} ${event.reason || ""}`);
  else wireLine(event, "sock", "⇄ open", `${who(event.connection_id) || "new socket"} connects`);
  renderConnections();
}

function authorize(event) {
  wireLine(event, event.status === 200 ? "sock" : "err", "authz", `${who(event.connection_id)} · ${event.status} ${event.reason || ""}`);
}

function log(event) {
  wireLine(event, "err", event.level.toLowerCase(), event.message);
}

// -- test clients -----------------------------------------------------------------------

class PageClient {
  constructor(name, { rooms = [], query = "", reconnect = false, token = null } = {}) {
    this.name = name;
    this.tag = `${name}-${Math.random().toString(36).slice(2, 8)}`;
    this.rooms = rooms;
    this.status = "connecting";
    this.inbox = [];
    this.dropped = false;
    const url = new URL(wsUrl());
    url.searchParams.set("client", this.tag);
    for (const [k, v] of new URLSearchParams(query)) url.searchParams.append(k, v);
    this.client = new FanoutClient(url.toString(), {
      rooms,
      // Signed in: the token goes as the subprotocol after `fanout`, the browser way.
      ...(token ? { token, tokenTransport: "protocol" } : {}),
      onFrame: (frame) => this.receive(frame),
      onError: (answer) => this.receive(answer, true),
      onStatus: (status) => { this.status = this.dropped && status === "closed" ? "dropped" : status; this.render(); },
    });
    if (!reconnect) this.client.reconnectLater = () => {}; // a test client stays down when cut
    this.node = this.build();
    this.client.connect();
  }

  get cid() { return state.tags.get(this.tag) || null; }

  receive(frame, error = false) {
    this.inbox.push(frame);
    const text = frame.body !== undefined && frame.body !== null ? frame.body : JSON.stringify(frame.data !== undefined ? frame.data : frame);
    const from = frame.from === undefined ? "" : frame.from === null ? "backend" : labelOf(frame.from) || frame.from;
    const item = error
      ? el("li", { class: "error", text: `${frame.error}: ${frame.message || ""}` })
      : el("li", {}, el("span", { class: "from", text: `${from}${frame.event && frame.event !== "message" ? ` [${frame.event}]` : ""}${frame.room ? ` #${frame.room}` : ""}: ` }), text);
    const inbox = this.node.querySelector(".inbox");
    if (this.inbox.length === 1) inbox.replaceChildren();
    inbox.append(item);
    inbox.scrollTop = inbox.scrollHeight;
  }

  build() {
    const room = el("input", { class: "room", placeholder: "room", "aria-label": `${this.name}: room (empty: everyone)`, value: this.rooms[0] || "" });
    const text = el("input", { placeholder: "message", "aria-label": `${this.name}: message`, "data-testid": "send-text" });
    const joinRoom = el("input", { class: "room", placeholder: "room", "aria-label": `${this.name}: room to join or leave` });
    const node = el("article", { class: "client", "data-client": this.name, "aria-label": `client ${this.name}` },
      el("header", {},
        el("h3", { text: this.name }), el("span", { class: "status" }), el("span", { class: "cid" }),
        el("span", { class: "actions" },
          el("button", { type: "button", class: "danger", "data-action": "drop", title: "cut the socket without a close frame", onclick: () => this.drop() }, "Drop"),
          el("button", { type: "button", "data-action": "close", onclick: () => this.close() }, "Close"))),
      el("ol", { class: "inbox", "aria-label": `${this.name}: inbox`, "aria-live": "polite" }, el("li", { class: "empty", text: "(empty)" })),
      el("form", { "aria-label": `${this.name}: send`, onsubmit: (e) => { e.preventDefault(); this.send(room.value.trim(), text.value); text.value = ""; } },
        room, text, el("button", { type: "submit", "data-action": "send" }, "Send")),
      el("form", { "aria-label": `${this.name}: rooms`, onsubmit: (e) => { e.preventDefault(); this.client.join(joinRoom.value.trim()); } },
        joinRoom,
        el("button", { type: "submit", "data-action": "join" }, "Join"),
        el("button", { type: "button", "data-action": "leave", onclick: () => this.client.leave(joinRoom.value.trim()) }, "Leave")));
    return node;
  }

  render() {
    const status = this.node.querySelector(".status");
    status.textContent = this.status;
    status.className = `status state-${this.status}`;
    this.node.querySelector(".cid").textContent = this.cid || "";
    for (const button of this.node.querySelectorAll("button")) button.disabled = this.status !== "open";
  }

  send(room, text) {
    this.client.sendText(room || null, text);
  }

  async drop() {
    if (!this.cid) return;
    this.dropped = true;
    const reply = await act({ action: "drop", connection_id: this.cid });
    if (!reply.ok) { this.dropped = false; this.receive({ error: "drop_failed", message: reply.error }, true); }
  }

  close() {
    this.client.close();
  }
}

function openClient(options = {}) {
  const name = options.name || String.fromCharCode(65 + (state.clients.length % 26)) + (state.clients.length >= 26 ? state.clients.length : "");
  const client = new PageClient(name, options);
  state.clients.push(client);
  const list = $("client-list");
  if (state.clients.length === 1) list.replaceChildren();
  list.append(client.node);
  client.render();
  return client;
}

$("open-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const rooms = $("open-rooms").value.split(/[\s,]+/).filter(Boolean);
  const options = { rooms, query: $("open-query").value.trim(), reconnect: $("open-reconnect").checked };
  const principal = state.config.dev_auth ? $("open-principal").value.trim() : "";
  if (principal) {
    // The server mints it for this page only: it never goes into the feed.
    const reply = await act({ action: "token", principal, rooms });
    if (!reply.ok) { $("open-principal").setCustomValidity(reply.error); $("open-principal").reportValidity(); return; }
    $("open-principal").setCustomValidity("");
    options.token = reply.token;
  }
  openClient(options);
});

// -- publish ----------------------------------------------------------------------------

$("publish-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const out = $("publish-result");
  let data;
  try {
    data = JSON.parse($("publish-data").value);
  } catch (error) {
    out.className = "result bad";
    out.textContent = `data is not JSON: ${error.message}`;
    return;
  }
  out.className = "result";
  out.textContent = "publishing…";
  const reply = await act({ action: "publish", to: $("publish-to").value, value: $("publish-value").value, event: $("publish-event").value.trim(), data });
  if (reply.ok) {
    const r = reply.result;
    out.textContent = `${r.audience || "everyone"}: delivered ${r.delivered}, gone ${r.gone}, failed ${r.failed} in ${(r.elapsed_seconds * 1000).toFixed(1)} ms`;
  } else {
    out.className = "result bad";
    out.textContent = reply.error;
  }
});

// -- the demo's stages ------------------------------------------------------------------

const demo = { stages: [], step: 0, busy: false, room: null };

function until(check, what, ms = 10000) {
  return new Promise((resolve, reject) => {
    const done = () => {
      const value = check();
      if (!value) return false;
      state.waiters = state.waiters.filter((w) => w !== waiter);
      clearTimeout(timer);
      clearInterval(tick);
      resolve(value);
      return true;
    };
    const waiter = () => { done(); };
    const timer = setTimeout(() => {
      state.waiters = state.waiters.filter((w) => w !== waiter);
      clearInterval(tick);
      reject(new Error(`timed out waiting for ${what}`));
    }, ms);
    const tick = setInterval(done, 100); // client inboxes change without a feed event
    if (!done()) state.waiters.push(waiter);
  });
}

const since = (n) => state.events.filter((e) => e.n > n);
const lastN = () => (state.events.length ? state.events[state.events.length - 1].n : 0);
function lambdaLine(n) {
  const ran = since(n).filter((e) => e.kind === "invoke").map((e) => `${e.route} → ${e.status}`);
  return ran.length ? `Lambda: ${ran.join(", ")}` : "no Lambda ran";
}
function postsLine(n) {
  const posts = since(n).filter((e) => e.kind === "api" && e.method === "POST")
    .map((e) => `${labelOf(e.connection_id) || e.connection_id} ${e.status === 410 ? "410 GoneException" : e.status}`);
  return `API Gateway → ${posts.join(", ") || "(no posts)"} (postToConnection)`;
}

function buildStages(n, m) {
  const stages = [];
  const clients = () => state.clients.slice(demo.first);
  for (let i = 0; i < n; i++) {
    stages.push(async () => {
      const before = lastN();
      const name = String.fromCharCode(65 + i);
      const query = demo.room ? `room=${demo.room}&name=${name}` : "";
      const client = openClient({ name, query });
      await until(() => client.status === "open" && client.cid, `${name} to connect`);
      return [`${name} connects to API Gateway's WebSocket API`, lambdaLine(before)];
    });
  }
  for (let k = 0; k < m; k++) {
    let audience = [];
    let text = "";
    stages.push(async () => {
      const sender = clients()[k % n];
      text = `hello from ${sender.name} #${k + 1}`;
      audience = clients().filter((c) => c.status === "open");
      for (const c of audience) c.expected = (c.expected || 0) + 1;
      const before = lastN();
      sender.send(demo.room, text);
      await until(() => since(before).some((e) => e.kind === "invoke" && e.route === "sendMessage"), "the sendMessage Lambda");
      demo.sendMark = before;
      return [`${sender.name} → API Gateway: ${JSON.stringify({ action: "sendMessage", text })}`, `${lambdaLine(before)}, which fans out (${state.config.strategy})`];
    });
    stages.push(async () => {
      await until(() => audience.every((c) => c.inbox.filter((f) => f.body === text).length >= 1), "every inbox");
      return [postsLine(demo.sendMark), "(API Gateway delivers what the Lambda posted)"];
    });
  }
  stages.push(async () => {
    const gone = clients()[n - 1];
    const before = lastN();
    await gone.drop();
    await until(() => since(before).some((e) => e.kind === "socket" && e.state === "closed" && e.connection_id === gone.cid), "the dropped socket");
    return [`${gone.name} ✕ drops without telling (no close frame, no $disconnect)`, `${lambdaLine(before)}: its rows stay behind`];
  });
  stages.push(async () => {
    const gone = clients()[n - 1];
    const sender = clients().find((c) => c.status === "open");
    if (!sender) return ["(no client left to send)", "(none)"];
    const before = lastN();
    sender.send(demo.room, "anyone still there?");
    await until(() => since(before).some((e) => e.kind === "api" && e.status === 410 && e.connection_id === gone.cid), "the 410 GoneException");
    await until(() => since(before).some((e) => e.kind === "fanout"), "the fan-out's result");
    return [`${sender.name} → API Gateway: sendMessage "anyone still there?"\n  ${postsLine(before)}`, `${lambdaLine(before)}, whose fan-out gets a 410 for ${gone.name}`];
  });
  stages.push(async () => {
    const gone = clients()[n - 1];
    // A 410 keeps the rows of a connection younger than FANOUT_CONNECTING_SECONDS: its
    // $connect might still be answering (`fanout demo` runs with 0).
    const grace = state.config.connecting_seconds || 0;
    if (!grace) await until(() => ![...state.rows.values()].some((r) => r.connection_id === gone.cid), "the clean-up");
    const survivors = clients().filter((c) => c !== gone);
    // With sqs_batched the 410 and a survivor's post can come from different worker runs:
    // wait for every inbox, then name the ones still short.
    const complete = (c) => c.inbox.filter((f) => f.body !== undefined).length >= (c.expected || 0) + 1;
    try {
      await until(() => survivors.every(complete), "every inbox");
    } catch {
      throw new Error(`${survivors.filter((c) => !complete(c)).map((c) => c.name).join(", ")} missed a message`);
    }
    if (grace) {
      return [`410 GoneException for ${gone.name} → its rows stay: it connected under ${grace} s ago (FANOUT_CONNECTING_SECONDS), when a 410 may mean its $connect is still answering`,
        `a 410 after that deletes them; so does its $disconnect, or the sweep once they expire`,
        `✓ every inbox got every message`];
    }
    return [`410 GoneException for ${gone.name} → its connection row and memberships deleted`,
      `the fan-out that got the 410 deleted ${gone.name}'s rows: no $disconnect needed`,
      `✓ every inbox got every message; ${gone.name}'s rows were cleaned up`];
  });
  return stages;
}

function openDemo(options = {}) {
  $("demo").hidden = false;
  if (options.connect) $("demo-connect").value = options.connect;
  if (options.send !== undefined) $("demo-send").value = options.send;
  demo.room = options.room || null;
  resetDemo();
}

function resetDemo() {
  // The demo starts as the seed's page does: no client yet.
  for (const client of state.clients.slice(demo.first || 0)) {
    if (client.status === "open") client.close();
    client.node.remove();
  }
  const n = Math.max(1, Number($("demo-connect").value) || 2);
  const m = Math.max(0, Number($("demo-send").value) || 0);
  demo.first = state.clients.length;
  demo.stages = buildStages(n, m);
  demo.step = 0;
  $("demo-args").textContent = `--connect ${n} --send ${m}`;
  $("demo-step").textContent = `step 0 / ${demo.stages.length}`;
  $("demo-wire").textContent = "press Next stage";
  $("demo-lambda").textContent = "–";
  $("demo-note").textContent = "";
  $("demo-note").className = "note";
  $("demo-next").disabled = false;
}

async function nextStage() {
  if (demo.busy || demo.step >= demo.stages.length) return;
  demo.busy = true;
  $("demo-next").disabled = true;
  try {
    const [wireText, lambdaText, done] = await demo.stages[demo.step]();
    demo.step += 1;
    $("demo-step").textContent = `step ${demo.step} / ${demo.stages.length}`;
    $("demo-wire").textContent = `▸ ${wireText}`;
    $("demo-lambda").textContent = lambdaText;
    $("demo-note").textContent = done || "";
    $("demo-note").className = done ? "note ok" : "note";
  } catch (error) {
    $("demo-note").textContent = `✗ ${error.message}`;
    $("demo-note").className = "note bad";
  } finally {
    demo.busy = false;
    $("demo-next").disabled = demo.step >= demo.stages.length;
  }
}

$("demo-open").addEventListener("click", () => openDemo());
$("demo-next").addEventListener("click", nextStage);
$("demo-reset").addEventListener("click", resetDemo);
$("demo-connect").addEventListener("change", resetDemo);
$("demo-send").addEventListener("change", resetDemo);

connectFeed();
