// A typed use of the client, checked by `tsc --noEmit` (tests/test_client_js.py): what an
// application written in TypeScript does with it.
import {
  FanoutClient,
  FanoutError,
  type ConnectionState,
  type HistoryEnd,
  type MessageFrame,
} from "fanout-core-client";

declare function show(frame: MessageFrame): void;
declare function reload(room: string | null): void;
declare function fetchToken(): Promise<string>;

const client = new FanoutClient("wss://abc123.execute-api.eu-west-1.amazonaws.com/prod", {
  rooms: ["lobby"],
  token: fetchToken, // called at every connect: a refreshed token each time
  tokenTransport: "protocol",
  WebSocket, // the browser's; in Node.js 20: import WebSocket from "ws"
  backoff: { base: 500, cap: 15_000 },
  pingInterval: 4 * 60_000,
  maxConnectionAge: 110 * 60_000,
  queueLimit: 50,
});

const stop = client.on("message", (frame) => {
  show(frame);
  const seq: number | undefined = frame.seq;
  if (frame.data !== undefined) console.log(JSON.stringify(frame.data), seq);
});
client.on("presence", (frame) => console.log(frame.event, frame.members?.length ?? 0));
client.on("joined", ({ room, seq, epoch }) => console.log(room, seq, epoch));
client.on("history.end", (end: HistoryEnd) => console.log(end.complete));
client.on("gap", ({ room }) => reload(room));
client.on("error", (answer) => {
  if (answer instanceof FanoutError) console.warn("client:", answer.error, answer.message);
  else console.warn(answer.error, answer.message, answer.retry_after);
});
client.on("state", ({ state }: { state: ConnectionState }) => console.log(state));

client.connect();
const id: string = client.sendText("lobby", "hello"); // queued until open, sent with its id
client.send("lobby", { order: 42 }, { event: "order.created", id: "order-42" });
client.send(null, [1, 2, 3]);
client.join("ops");
client.presence("ops");
const last: number | null = client.lastSeq("lobby");
console.log(id, last, client.state, client.queued.length);
stop();
client.leave("ops");
client.close();
