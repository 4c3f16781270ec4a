// The client against `fanout serve` with history on: a quiet member resumes from where it
// joined, reconnects with full jitter, rejoins and resumes every room, and queues sends
// made while offline with their ids. Run by tests/test_client_js.py.
import assert from "node:assert/strict";
import { afterEach, mock, test } from "node:test";
import { FanoutClient, FanoutError } from "../../fanout_core/client/fanout-client.mjs";
import { client, cut, data, network, opened, room, until } from "./support.mjs";

const made = [];
function track(c) {
  made.push(c);
  return c;
}
afterEach(() => {
  network.offline = false;
  for (const c of made.splice(0)) c.close();
  mock.restoreAll();
});

test("without a global WebSocket and no WebSocket option: a clear error", () => {
  const global = globalThis.WebSocket;
  delete globalThis.WebSocket; // Node.js 20 without --experimental-websocket has none
  try {
    assert.throws(
      () => new FanoutClient("ws://127.0.0.1:1/local"),
      (error) =>
        error instanceof FanoutError &&
        error.error === "no_websocket" &&
        /no global WebSocket/.test(error.message) &&
        /new FanoutClient\(url, \{ WebSocket \}\)/.test(error.message),
    );
  } finally {
    if (global !== undefined) globalThis.WebSocket = global;
  }
});

test("a quiet member, dropped while 5 are published, gets all 5 through history, once, in order", async () => {
  const lobby = room("quiet");
  const quiet = track(client({ rooms: [lobby] }));
  const publisher = track(client({ rooms: [lobby] }));
  // One after the other: moto, under `fanout serve`, does not make two racing first
  // writes of a room's counter atomic as DynamoDB does (each would keep its own epoch).
  quiet.connect();
  await until(() => quiet.seen.joined.length === 1, "the quiet member's position");
  publisher.connect();
  await until(() => publisher.seen.joined.length === 1, "the publisher's position");
  assert.equal(quiet.lastSeq(lobby), 0); // a room nothing was published to: seq 0
  assert.ok(quiet.seen.joined[0].epoch > 0);

  network.offline = true;
  cut(quiet);
  await until(() => quiet.state === "reconnecting", "the cut to be seen");
  for (let n = 1; n <= 5; n += 1) publisher.send(lobby, n);
  await until(() => data(publisher).length === 5, "the publisher to see its 5 sends");
  assert.deepEqual(quiet.seen.message, []); // it received nothing before the cut

  network.offline = false;
  await until(() => data(quiet).length === 5, "the 5 through history");
  await until(() => quiet.seen["history.end"].length === 1, "history.end");
  assert.deepEqual(data(quiet), [1, 2, 3, 4, 5]);
  assert.deepEqual(quiet.seen.message.map((m) => m.seq), [1, 2, 3, 4, 5]);
  assert.equal(quiet.seen["history.end"][0].complete, true);
  assert.deepEqual(quiet.seen.gap, []);
  // Once: a live frame after them comes once, and nothing comes twice.
  publisher.send(lobby, 6);
  await until(() => data(quiet).length === 6, "a live frame");
  assert.deepEqual(data(quiet), [1, 2, 3, 4, 5, 6]);
  assert.equal(quiet.lastSeq(lobby), 6);
});

test("it reconnects after full-jitter delays, rejoins every room and resumes each", async () => {
  const [a, b] = [room("a"), room("b")];
  const delays = [];
  const realSetTimeout = globalThis.setTimeout;
  mock.method(globalThis, "setTimeout", (fn, ms, ...rest) => {
    delays.push(ms);
    return realSetTimeout(fn, ms, ...rest);
  });
  mock.method(Math, "random", () => 0.5);
  const subject = track(client({ rooms: [a], backoff: { base: 40, cap: 100 } }));
  const publisher = track(client({ rooms: [a, b] }));
  subject.connect();
  await opened(subject);
  subject.join(b);
  await until(() => subject.seen.joined.length === 2, "both rooms' positions");
  publisher.connect();
  publisher.send(a, "a1");
  publisher.send(b, "b1");
  await until(() => data(subject).length === 2, "a1 and b1");

  network.offline = true;
  delays.length = 0;
  cut(subject);
  await until(() => subject.attempts >= 4, "four refused attempts");
  publisher.send(a, "a2");
  publisher.send(b, "b2");
  await until(() => data(publisher).length === 4, "the publisher's sends");
  network.offline = false;
  await until(() => data(subject).length === 4, "a2 and b2 through history");
  // Full jitter: random() * min(cap, base * 2^attempt), here 0.5 * 40, 80, 100, 100.
  for (const delay of [20, 40, 50, 50]) assert.ok(delays.includes(delay), `${delay} in ${delays}`);
  const states = subject.seen.state.map((s) => s.state);
  assert.deepEqual(states.slice(0, 2), ["connecting", "open"]);
  assert.ok(states.includes("reconnecting"));
  assert.equal(states.at(-1), "open");
  assert.equal(subject.attempts, 0); // reset once open
  assert.deepEqual(data(subject).sort(), ["a1", "a2", "b1", "b2"]);
  assert.equal(subject.seen["history.end"].length, 2); // both rooms resumed
  assert.deepEqual(
    subject.seen["history.end"].map((end) => [end.room, end.complete]).sort(),
    [[a, true], [b, true]],
  );
});

test("sends made offline wait in a bounded queue and go out with the ids they were given", async () => {
  const lobby = room("queue");
  const sender = track(client({ rooms: [lobby], queueLimit: 3 }));
  const reader = track(client({ rooms: [lobby] }));
  reader.connect();
  await opened(reader);
  network.offline = true;
  sender.connect();
  await until(() => sender.state === "reconnecting", "an attempt refused");
  const first = sender.send(lobby, "one");
  const second = sender.sendText(lobby, "two", { id: "chosen-id-2" });
  const again = sender.send(lobby, "one", { id: first }); // a resend of the first
  assert.equal(second, "chosen-id-2");
  assert.equal(again, first);
  assert.match(first, /^[A-Za-z0-9_-]{1,64}$/); // a valid idempotency key
  assert.deepEqual(sender.queued.map((body) => body.id), [first, "chosen-id-2", first]);
  assert.throws(
    () => sender.send(lobby, "four"),
    (error) => error instanceof FanoutError && error.error === "queue_full",
  );

  network.sent.length = 0;
  network.offline = false;
  await until(() => reader.seen.message.length === 2, "the queued sends");
  const sent = network.sent.filter((body) => body.action === "sendMessage");
  assert.deepEqual(sent.map((body) => body.id), [first, "chosen-id-2", first]);
  assert.deepEqual(sender.queued, []);
  // The resend kept the first's id: the API fanned it out once.
  sender.send(lobby, "after");
  await until(() => reader.seen.message.length === 3, "a send after the queue");
  assert.deepEqual(
    reader.seen.message.map((m) => m.data ?? m.body),
    ["one", "two", "after"],
  );
});

test("the typed events: presence, history.end and gaps, errors, states", async () => {
  const lobby = room("events");
  const subject = track(client({ rooms: [lobby] }));
  subject.connect();
  await until(() => subject.seen.joined.length === 1, "its position");
  assert.ok(subject.presence(lobby));
  await until(() => subject.seen.presence.length === 1, "the presence answer");
  assert.equal(subject.seen.presence[0].event, "presence");
  assert.equal(subject.seen.presence[0].count, 1);
  subject.request({ action: "history", room: lobby, since: 0 });
  await until(() => subject.seen["history.end"].length === 1, "a history.end");
  subject.request({ action: "dance" });
  await until(() => subject.seen.error.length === 1, "an error answer");
  assert.equal(subject.seen.error[0].error, "unknown_action");
  // A position the room never reached: the API says complete false, a gap.
  subject.request({ action: "history", room: lobby, since: 5, epoch: 1 });
  await until(() => subject.seen.gap.length === 1, "a gap");
  assert.equal(subject.seen.gap[0].room, lobby);
  assert.equal(subject.seen.gap[0].end.complete, false);
  subject.close();
  assert.equal(subject.state, "closed");
  assert.deepEqual(
    subject.seen.state.map((s) => s.state),
    ["connecting", "open", "closed"],
  );
});
