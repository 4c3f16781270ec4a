// Drives fanout-core's reference JavaScript client for tests/test_client.py.
// argv: the client module's path, the WebSocket URL, rooms (comma-separated).
// Prints one JSON line per event: {"kind": "frame" | "status" | "gap" | "error", ...}.
// Reads commands from stdin, one per line: "history <room> <since>"; "offline" and
// "online" (while offline, every connect is refused, as without a network); "close <room>".
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const [modulePath, url, rooms] = process.argv.slice(2);
const { FanoutClient } = await import(pathToFileURL(modulePath).href);
const print = (line) => process.stdout.write(JSON.stringify(line) + "\n");
let offline = false;
class Network extends WebSocket {
  constructor(target) {
    super(offline ? "ws://127.0.0.1:9/" : target); // nothing listens on port 9: refused
  }
}
const client = new FanoutClient(url, {
  WebSocket: Network,
  rooms: rooms ? rooms.split(",") : [],
  backoff: { base: 300, cap: 600 },
  onFrame: (frame) => print({ kind: "frame", frame }),
  onGap: (room, end) => print({ kind: "gap", room, end }),
  onStatus: (status) => print({ kind: "status", status }),
  onError: (answer) => print({ kind: "error", answer }),
});
client.connect();
for await (const line of createInterface({ input: process.stdin })) {
  const [command, room, since] = line.trim().split(" ");
  if (command === "history") {
    client.request({ action: "history", room, since: Number(since) });
  } else if (command === "offline" || command === "online") {
    offline = command === "offline";
  } else if (command === "close") {
    client.close();
    print({ kind: "status", status: "done", last: client.lastSeq(room || null) });
    process.exit(0);
  }
}
