// API Gateway's cuts, scaled down by `fanout serve --idle-timeout 1.5 --max-lifetime 4`: a
// ping keeps an idle connection open; the client opens a new connection before the lifetime
// cut; and across a cut it did not see coming, it reconnects and resumes. Nothing is lost
// or repeated. Run by tests/test_client_js.py.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { client, data, network, opened, room, until } from "./support.mjs";

const made = [];
function track(c) {
  made.push(c);
  return c;
}
afterEach(() => {
  network.offline = false;
  for (const c of made.splice(0)) c.close();
});
const states = (c) => c.seen.state.map((s) => s.state);

test("a ping under the idle timeout keeps the connection; without pings it is cut", async () => {
  const lobby = room("idle");
  const pinging = track(client({ rooms: [lobby], pingInterval: 300 }));
  const silent = track(client({ rooms: [lobby], pingInterval: 0, reconnect: false }));
  pinging.connect();
  silent.connect();
  await opened(pinging);
  await opened(silent);
  await until(() => silent.state === "closed", "the idle cut of the silent client");
  const sentPings = network.sent.filter((body) => body.action === "ping").length;
  assert.ok(sentPings >= 2, `pings sent: ${sentPings}`);
  assert.deepEqual(states(pinging), ["connecting", "open"]); // never cut
  assert.equal(pinging.state, "open");
});

test("it reconnects before the lifetime cut and resumes: every frame once, in order", async () => {
  const lobby = room("refresh");
  const options = { rooms: [lobby], pingInterval: 300, maxConnectionAge: 1000 };
  const subject = track(client(options));
  const publisher = track(client(options));
  const resumes = []; // "ask" for each history request, "end" for each history.end
  subject.net.onSend = (body) => body.action === "history" && resumes.push("ask");
  subject.on("history.end", () => resumes.push("end"));
  subject.connect();
  await until(() => subject.seen.joined.length === 1, "the subject's position");
  publisher.connect();
  await opened(publisher);
  const sent = [];
  // Sends for 2.5 s: the subject opens a new connection at least twice meanwhile.
  while (states(subject).filter((s) => s === "open").length < 3) {
    publisher.send(lobby, sent.length);
    sent.push(sent.length);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await until(() => data(subject).length >= sent.length, "every frame at the subject");
  // Every frame, once. Live frames come as they arrive: the old connection's last ones can
  // come after the new one's first (docs/history.md, Order); their seqs put them back.
  assert.deepEqual([...data(subject)].sort((a, b) => a - b), sent);
  const seqs = subject.seen.message.map((m) => m.seq);
  assert.equal(new Set(seqs).size, sent.length);
  assert.ok(!states(subject).includes("reconnecting"), "a refresh waits for no backoff");
  // Each new connection resumed (its frames came on the old one meanwhile, or through it).
  await until(() => subject.seen["history.end"].length >= 2, "a resume per new connection");
  assert.deepEqual(subject.seen.gap, []);
  // One resume at a time: a refresh waits for the answer on its way, however slow.
  await until(() => resumes.at(-1) === "end", "the last resume's answer");
  resumes.forEach((step, n) => assert.equal(step, n % 2 ? "end" : "ask", resumes.join(" ")));
});

test("across a cut it did not see coming, it reconnects and resumes", async () => {
  const lobby = room("cut");
  const subject = track(client({ rooms: [lobby], pingInterval: 300 }));
  const publisher = track(client({ rooms: [lobby], pingInterval: 300, maxConnectionAge: 1000 }));
  subject.connect();
  await until(() => subject.seen.joined.length === 1, "the subject's position");
  publisher.connect();
  publisher.send(lobby, "before");
  await until(() => data(subject).length === 1, "a frame before the cut");
  await until(() => subject.state !== "open", "the lifetime cut", 10000);
  subject.net.offline = true; // it stays away while three are published
  for (const n of [1, 2, 3]) publisher.send(lobby, n);
  await until(() => data(publisher).length === 4, "the publisher's frames");
  subject.net.offline = false;
  await until(() => data(subject).length === 4, "the three through history");
  assert.deepEqual(data(subject), ["before", 1, 2, 3]);
  assert.ok(states(subject).includes("reconnecting"));
  assert.equal(subject.seen["history.end"].at(-1).complete, true);
});
