// tests/browser/presence.test.mjs: clients/js/moonwire.js's presence helpers in a real browser:
// presence(room) lists the members, onPresence(room, fn) hears joins and leaves of other pages,
// and a joinRoom that canJoin refuses rejects with code "refused" and the server's reason.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { PATIENCE, Server, TEST_APP, copyApp, launchBrowser, mintToken } from "./harness.mjs";

let server, browser;

before(async () => {
  server = await Server.start(copyApp(TEST_APP));
  browser = await launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (!server) return;
  const exit = await server.stop();
  const report = server.sanitizerReport();
  const log = server.log();
  server.remove();
  if (exit) assert.deepEqual(exit, { code: 0, signal: null }, "moonwire exits 0 on SIGTERM");
  assert.deepEqual(report, [], log);
});

// A tab with `window.mw = {client, events}`: every presence event of room pres:* recorded.
async function page(options = {}) {
  const context = await browser.newContext();
  const p = await context.newPage();
  p.on("pageerror", (err) => console.error("page error:", err));
  await p.goto(server.origin + "/");
  await p.evaluate(async (opts) => {
    const { connect } = await import("/moonwire.js");
    const client = connect(opts);
    const events = [];
    client.onPresence("*", (action, data) => events.push({ action, ...data }));
    window.mw = { client, events };
    await new Promise((resolve) => client.onStateChange((s) => s === "open" && resolve()));
  }, options);
  return p;
}

test("presence(room) and onPresence: members, joins and leaves of other pages", { timeout: 180000 }, async () => {
  const room = "pres:" + Date.now();
  const now = Math.floor(Date.now() / 1000);
  const alice = await page({ token: mintToken({ sub: "alice", exp: now + 600 }) });
  const anon = await page();
  await alice.evaluate((r) => window.mw.client.joinRoom(r), room);
  const anonId = await anon.evaluate(async (r) => {
    await window.mw.client.joinRoom(r);
    return window.mw.client.clientId;
  }, room);
  await alice.waitForFunction((id) => window.mw.events.some((e) => e.action === "join" && e.clientId === id),
    anonId, { timeout: PATIENCE });
  const list = await anon.evaluate((r) => window.mw.client.presence(r), room);
  assert.equal(list.roomName, room);
  assert.equal(list.count, 2);
  assert.equal(list.users, 2);
  assert.equal(list.clients[0].userId, "alice", "the oldest joiner first");
  assert.equal(list.clients[1].clientId, anonId);
  assert.equal("userId" in list.clients[1], false, "anonymous: no userId");
  // the anonymous page leaves: alice hears it
  await anon.evaluate((r) => window.mw.client.leaveRoom(r), room);
  await alice.waitForFunction((id) => window.mw.events.some((e) => e.action === "leave" && e.clientId === id),
    anonId, { timeout: PATIENCE });
  const events = await alice.evaluate(() => window.mw.events);
  assert.deepEqual(events, [
    { action: "join", roomName: room, clientId: anonId },
    { action: "leave", roomName: room, clientId: anonId },
  ]);
  // presence of a room the page is not in, or without presence, is refused
  const refusals = await anon.evaluate(async (r) => {
    const codes = [];
    for (const name of [r, "plain-room"]) {
      try { await window.mw.client.presence(name); codes.push("resolved"); }
      catch (err) { codes.push(err.code + ": " + err.message); }
    }
    return codes;
  }, room);
  assert.deepEqual(refusals, ["refused: Not in room", "refused: Presence is not enabled for this room"]);
  await alice.context().close();
  await anon.context().close();
});

test("a join that canJoin refuses rejects with the server's reason, and is not retried", { timeout: 180000 }, async () => {
  const now = Math.floor(Date.now() / 1000);
  const plain = await page({ token: mintToken({ sub: "bob", exp: now + 600 }) });
  const vip = await page({ token: mintToken({ sub: "vera", vip: true, exp: now + 600 }) });
  const refused = await plain.evaluate(async () => {
    try { await window.mw.client.joinRoom("vip:lounge"); return "joined"; }
    catch (err) { return err.code + ": " + err.message; }
  });
  assert.equal(refused, "refused: Not allowed");
  const joined = await vip.evaluate(async () => (await window.mw.client.joinRoom("vip:lounge")).success);
  assert.equal(joined, true);
  await plain.context().close();
  await vip.context().close();
});

test("a rejoin after a reconnect is checked by canJoin too: refused, onRejoin hears it", { timeout: 180000 }, async () => {
  const context = await browser.newContext();
  const p = await context.newPage();
  p.on("pageerror", (err) => console.error("page error:", err));
  // the first token carries the claim, the ones after the reconnect do not
  let issued = 0;
  await p.exposeFunction("mintToken", () => {
    issued += 1;
    return mintToken({ sub: "vic", vip: issued === 1, exp: Math.floor(Date.now() / 1000) + 600 });
  });
  await p.goto(server.origin + "/");
  await p.evaluate(async () => {
    const { connect } = await import("/moonwire.js");
    const client = connect({ getToken: () => window.mintToken() });
    window.rejoins = [];
    window.mw = { client };
    await new Promise((resolve) => client.onStateChange((s) => s === "open" && resolve()));
    await client.joinRoom("vip:club", { onRejoin: (info) => window.rejoins.push(info) });
    client.send("probe", "dropAndSay", { room: "vip:club", text: "bye", after: 0.1 });
  });
  await p.waitForFunction(() => window.rejoins.length === 1, null, { timeout: PATIENCE });
  const info = await p.evaluate(() => ({ refused: window.rejoins[0].refused, error: window.rejoins[0].error,
                                         recovered: window.rejoins[0].recovered }));
  assert.deepEqual(info, { refused: true, error: "Not allowed", recovered: false });
  const rooms = await p.evaluate(async () => (await window.mw.client.request("probe", "whoami")).rooms);
  assert.deepEqual(rooms, []);
  await context.close();
});
