// Sign-in from the client: `token` as a string or a function (sync or async) called at every
// connect, sent as ?token= or as the subprotocols `fanout, <token>` (answered `fanout`),
// checked by the JWT authorizer of `fanout serve --dev-auth`. Run by tests/test_client_js.py.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { client, cut, opened, room, until } from "./support.mjs";

const tokens = JSON.parse(process.env.FANOUT_TOKENS || "[]");
assert.equal(tokens.length, 4, "FANOUT_TOKENS: four tokens of the served issuer");
const made = [];
afterEach(() => {
  for (const c of made.splice(0)) c.close();
});

// The principal the API knows this connection by, from a presence answer.
async function principal(c, lobby) {
  const before = c.seen.presence.length;
  assert.ok(c.presence(lobby));
  await until(() => c.seen.presence.length > before, "a presence answer");
  const { members } = c.seen.presence.at(-1);
  assert.equal(members.length, 1);
  return members[0].principal;
}

test("an async token function is called at every connect; its token goes as ?token=", async () => {
  const lobby = room("signed");
  let calls = 0;
  const c = client({
    rooms: [lobby],
    token: async () => {
      calls += 1;
      await new Promise((resolve) => setTimeout(resolve, 5));
      return tokens[calls - 1];
    },
  });
  made.push(c);
  c.connect();
  await opened(c);
  assert.equal(await principal(c, lobby), "user-1");
  cut(c);
  await until(() => calls === 2 && c.state === "open", "a reconnect with a new token");
  assert.equal(await principal(c, lobby), "user-2");
  assert.equal(calls, 2);
});

test("a sync token function, as the subprotocol: a refused token is replaced on the next try", async () => {
  const lobby = room("protocol");
  const given = ["not-a-token", tokens[2]];
  let calls = 0;
  const c = client({
    rooms: [lobby],
    tokenTransport: "protocol",
    token: () => given[Math.min(calls++, given.length - 1)],
  });
  made.push(c);
  c.connect();
  await opened(c);
  assert.equal(calls, 2); // the first handshake was refused (401), the second signed in
  assert.equal(c.socket.protocol, "fanout"); // the answer a browser needs
  assert.equal(await principal(c, lobby), "user-3");
});

test("a token string, and no token at all: refused, and retried", async () => {
  const lobby = room("string");
  const c = client({ rooms: [lobby], token: tokens[3], tokenTransport: "protocol" });
  made.push(c);
  c.connect();
  await opened(c);
  assert.equal(await principal(c, lobby), "user-4");
  const anonymous = client({ rooms: [lobby], backoff: { base: 20, cap: 40 } });
  made.push(anonymous);
  anonymous.connect();
  await until(() => anonymous.attempts >= 2, "two refused handshakes");
  assert.notEqual(anonymous.state, "open");
});
