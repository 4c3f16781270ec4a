// What the client's Node.js tests share: the served URL, a network that can be switched off,
// and waiting for what a client saw. Run by tests/test_client_js.py against `fanout serve`.
import WS from "ws";
import { FanoutClient } from "../../fanout_core/client/fanout-client.mjs";

export const URL_ = process.env.FANOUT_WS;
if (!URL_) throw new Error("FANOUT_WS: the WebSocket URL of a `fanout serve` (tests/test_client_js.py sets it)");

// Node.js 20 has no global WebSocket (without --experimental-websocket): the `ws` package's,
// through a network that refuses every new connection while it is offline (nothing listens
// on port 9), as a phone without signal does: `network.offline` for every client, a
// client's `net.offline` for that one. Sent bodies are recorded in `network.sent`, and
// given to a client's `net.onSend`.
export const network = { offline: false, sent: [] };
function networkOf(net) {
  return class Network extends WS {
    constructor(url, protocols) {
      super(network.offline || net.offline ? "ws://127.0.0.1:9/" : url, protocols);
    }
    send(data) {
      network.sent.push(JSON.parse(data));
      net.onSend?.(JSON.parse(data));
      super.send(data);
    }
  };
}

let rooms = 0;
export function room(name = "r") {
  rooms += 1;
  return `${name}-${process.pid}-${rooms}`;
}

// A client on the test network, with everything it emitted recorded.
export function client(options = {}) {
  const seen = { message: [], presence: [], joined: [], "history.end": [], gap: [], error: [], state: [] };
  const net = { offline: false };
  const made = new FanoutClient(URL_, {
    WebSocket: networkOf(net),
    backoff: { base: 50, cap: 200 },
    ...options,
  });
  for (const event of Object.keys(seen)) made.on(event, (value) => seen[event].push(value));
  made.seen = seen;
  made.net = net;
  return made;
}

export async function until(condition, what, ms = 15000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export const opened = (c) => until(() => c.state === "open", "the client to open");
export const data = (c) => c.seen.message.map((m) => m.data);

// Cut a client's socket without a close frame, as a lost network does.
export function cut(c) {
  c.socket.terminate();
}
