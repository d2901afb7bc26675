// tests/browser/client.test.mjs: clients/js/moonwire.js in a real browser against a real
// moonwire: request() (response, error codes, timeout, queued before the connection opens),
// rooms and reconnect across a server restart, getToken(), the 4401 close and token refresh,
// history rooms recovering what the page missed (a dropped connection; a host restarted on Redis).
// The page is tests/browser/app's empty index.html; each test imports /moonwire.js into it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { PATIENCE, Redis, SECRET, Server, TEST_APP, copyApp, launchBrowser, mintToken, waitFor } from "./harness.mjs";

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

// A fresh tab on the server's origin with `window.mw = {client, states, pushed}`: every state
// change and every pushed message is recorded. `getToken: true` makes the client call the
// page's window.mintToken (exposed by the test) before each connect.
async function clientPage(options = {}, on = server) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (err) => console.error("page error:", err));
  if (options.exposeToken) await page.exposeFunction("mintToken", options.exposeToken);
  await page.goto(on.origin + "/");
  await page.evaluate(async (opts) => {
    const { connect } = await import("/moonwire.js");
    if (opts.getToken) opts.getToken = () => window.mintToken();
    const client = connect(opts);
    const states = [], pushed = [];
    client.onStateChange((state, info) => states.push({ state, ...info, at: Date.now() }));
    client.on("*", "*", (data, message) => pushed.push(message));
    window.mw = { client, states, pushed };
  }, { ...options, exposeToken: undefined });
  return page;
}

const isOpen = (page, timeout = PATIENCE) =>
  page.waitForFunction(() => window.mw.client.state === "open", null, { timeout });

test("request() resolves with the response, rejects with the error code, times out", { timeout: 180000 }, async () => {
  const page = await clientPage();
  const r = await page.evaluate(async () => {
    const c = window.mw.client;
    const outcome = (p) => p.then((value) => ({ value }),
      (err) => ({ code: err.code, message: err.message, isError: err instanceof Error }));
    const out = {};
    out.queued = await c.request("probe", "echo", "sent before the connection opened"); // queued, then sent
    out.state = c.state;
    out.echo = await c.request("probe", "echo", { a: 1, list: [1, 2], nested: { s: "é" } });
    out.nothing = await outcome(c.request("probe", "echo"));
    out.coded = await outcome(c.request("probe", "fail", { code: "nope", message: "no way" }));
    out.unknown = await outcome(c.request("probe", "missing", {}));
    out.unknownData = await c.request("probe", "missing", {}).catch((err) => {
      const { requestId, ...fields } = err.data; // requestId is the client's own counter
      return fields;
    });
    out.parallel = await Promise.all([1, 2, 3].map((n) => c.request("probe", "echo", { n })));
    const t0 = performance.now();
    out.timeout = await outcome(c.request("probe", "sleep", { seconds: 1.5 }, { timeout: 300 }));
    out.timeoutMs = performance.now() - t0;
    await new Promise((resolve) => setTimeout(resolve, 1800)); // the late reply arrives meanwhile
    out.lateReplyPushed = window.mw.pushed.some((m) => m.type === "probe");
    out.after = await c.request("probe", "echo", "still working");
    out.sent = c.send("probe", "missing", {}); // fire and forget: its error frame goes to on()
    await new Promise((resolve) => setTimeout(resolve, 300));
    out.errorPushed = window.mw.pushed.filter((m) => m.type === "error").map((m) => m.data.code);
    return out;
  });
  assert.equal(r.queued, "sent before the connection opened");
  assert.equal(r.state, "open");
  assert.deepEqual(r.echo, { a: 1, list: [1, 2], nested: { s: "é" } });
  assert.deepEqual(r.nothing, { value: undefined }, "a reply without `response` resolves with undefined");
  assert.deepEqual(r.coded, { code: "nope", message: "no way", isError: true });
  assert.equal(r.unknown.code, "not_found");
  assert.equal(r.unknown.message, "Unknown route: probe/missing", "the message names the route");
  assert.deepEqual(r.unknownData, { error: "Unknown route", code: "not_found", type: "probe", action: "missing" },
    "the error keeps the frame's fields");
  assert.deepEqual(r.parallel, [{ n: 1 }, { n: 2 }, { n: 3 }]);
  assert.equal(r.timeout.code, "timeout");
  assert.ok(r.timeoutMs >= 290, `timed out after ${r.timeoutMs} ms`); // the code above says it was the timeout, not the reply
  assert.equal(r.lateReplyPushed, false, "a late reply is dropped, not passed to on()");
  assert.equal(r.after, "still working");
  assert.equal(r.sent, true);
  assert.deepEqual(r.errorPushed, ["not_found"]);
  await page.context().close();
});

test("reconnects after a server restart and rejoins its rooms", { timeout: 180000 }, async () => {
  const a = await clientPage();
  await isOpen(a);
  const before = await a.evaluate(async () => {
    const c = window.mw.client;
    const joined = await c.joinRoom("lobby");
    await c.joinRoom("brief");
    const left = await c.leaveRoom("brief");
    let refused;
    try { await c.joinRoom(""); } catch (err) { refused = { code: err.code, message: err.message }; }
    return { joined, left, refused, rooms: c.rooms, clientId: c.clientId };
  });
  assert.equal(before.joined.success, true);
  assert.equal(before.joined.data.roomName, "lobby");
  assert.equal(before.left.success, true);
  assert.deepEqual(before.refused, { code: "refused", message: "Room name is required" });
  assert.deepEqual(before.rooms, ["lobby"]);

  const exit = await server.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  await a.waitForFunction(() => window.mw.client.state === "reconnecting", null, { timeout: PATIENCE });
  await server.start();
  const restarted = Date.now();
  await a.waitForFunction((old) => window.mw.client.state === "open" && window.mw.client.clientId !== old,
    before.clientId, { timeout: PATIENCE });
  // The backoff cap (5 s) is checked on the recorded delays below, not on the wall clock,
  // which a busy machine stretches.
  console.log(`reconnected ${Date.now() - restarted} ms after the restart`);

  // Handled after the rejoin (one client's messages run in order): the server has it in lobby.
  const who = await a.evaluate(() => window.mw.client.request("probe", "whoami"));
  assert.deepEqual(who.rooms, ["lobby"]);
  const waits = await a.evaluate(() => window.mw.states.filter((s) => s.state === "reconnecting"));
  assert.equal(waits[0].code, 1001, "the server closed with 1001 on shutdown");
  assert.ok(waits.every((s) => s.delay >= 0 && s.delay <= 5000), JSON.stringify(waits));
  assert.ok(waits.slice(1).every((s) => s.code === 1006), "failed attempts report 1006");

  // A room message sent after the restart, by another tab, reaches the rejoined client.
  const b = await clientPage();
  await isOpen(b);
  const said = await b.evaluate(() => window.mw.client.request("probe", "say", { room: "lobby", text: "after the restart" }));
  assert.equal(said.delivered, 1);
  await a.waitForFunction(() => window.mw.pushed.some((m) => m.type === "probe" && m.action === "said" &&
    m.data.text === "after the restart"), null, { timeout: PATIENCE });
  await a.context().close();
  await b.context().close();
});

test("getToken() runs before each connect; a 4401 close brings a fresh token", { timeout: 180000 }, async () => {
  const issued = [];
  const page = await clientPage({
    getToken: true,
    exposeToken: () => {
      const now = Math.floor(Date.now() / 1000);
      const sub = "user-" + (issued.length + 1);
      issued.push({ sub, at: Date.now() });
      return mintToken({ sub, iat: now, exp: now + (issued.length === 1 ? 2 : 300) }); // the first expires at once
    },
  });
  const authenticated = (sub, timeout) => page.waitForFunction((s) => window.mw.pushed.some((m) =>
    m.type === "auth" && m.action === "authenticated" && m.data.userId === s), sub, { timeout });
  await authenticated("user-1", PATIENCE);
  assert.equal(issued.length, 1);
  await page.waitForFunction(() => window.mw.states.some((s) => s.code === 4401), null, { timeout: PATIENCE });
  await authenticated("user-2", PATIENCE);
  await isOpen(page);
  const states = await page.evaluate(() => window.mw.states);
  const expired = states.find((s) => s.code === 4401);
  assert.equal(expired.reason, "Token expired");
  assert.ok(expired.delay <= 500, `after 4401 the client retries at once (delay ${expired.delay} ms)`);
  assert.equal(issued.length, 2, "one token per connect");
  assert.equal(states.filter((s) => s.state === "connecting").length, issued.length);
  const who = await page.evaluate(() => window.mw.client.request("probe", "whoami"));
  assert.equal(who.userId, "user-2");
  await page.context().close();
});

test("a fixed token that expires (4401) closes the client instead of looping; close() stops it", { timeout: 180000 }, async () => {
  const now = Math.floor(Date.now() / 1000);
  const page = await clientPage({ token: mintToken({ sub: 42, exp: now + 2 }) });
  await isOpen(page);
  await page.waitForFunction(() => window.mw.client.state === "closed", null, { timeout: PATIENCE });
  const r = await page.evaluate(async () => {
    await new Promise((resolve) => setTimeout(resolve, 1500)); // no reconnect attempts follow
    const c = window.mw.client;
    let late;
    try { await c.request("probe", "echo", 1); } catch (err) { late = err.code; }
    return { states: window.mw.states.map((s) => s.state + (s.code ? ":" + s.code : "")), late,
             userId: window.mw.pushed.find((m) => m.type === "auth").data.userId };
  });
  assert.equal(r.userId, 42);
  assert.deepEqual(r.states, ["connecting", "open", "closed:4401"]);
  assert.equal(r.late, "closed");

  // close() from the page: pending requests reject with "closed", no reconnect.
  const other = await clientPage();
  await isOpen(other);
  const closed = await other.evaluate(async () => {
    const c = window.mw.client;
    const pending = c.request("probe", "sleep", { seconds: 1 }).catch((err) => err.code);
    c.close();
    const code = await pending;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return { code, state: c.state, sent: c.send("probe", "echo"), states: window.mw.states.map((s) => s.state) };
  });
  assert.deepEqual(closed, { code: "closed", state: "closed", sent: false, states: ["connecting", "open", "closed"] });
  await page.context().close();
  await other.context().close();
});

test("a short-lived token is refreshed on the open connection: three expiries, no 4401, no lost request",
  { timeout: 180000 }, async () => {
    // a server of its own that warns 2 s before exp (auth/expiring); tokens live 5 s
    const dir = copyApp(TEST_APP);
    fs.writeFileSync(path.join(dir, "app.lua"), `return { auth = { secret = ${JSON.stringify(SECRET)},
      algorithm = "HS256", required = false, leeway = 0, refreshBefore = 2 } }\n`);
    const own = await Server.start(dir);
    try {
      const issued = [];
      const page = await clientPage({
        getToken: true,
        exposeToken: () => {
          const now = Math.floor(Date.now() / 1000);
          issued.push(now + 5);
          return mintToken({ sub: "refresher", iat: now, exp: now + 5 });
        },
      }, own);
      await isOpen(page);
      const firstExp = issued[0];
      // keep asking while three of the tokens' lifetimes pass
      const result = await page.evaluate(async (until) => {
        const answers = [];
        let failed = null;
        while (Date.now() < until) {
          try {
            answers.push((await window.mw.client.request("probe", "whoami")).userId);
          } catch (err) {
            failed = err.message + " (" + err.code + ")";
            break;
          }
          await new Promise((r) => setTimeout(r, 100));
        }
        return { answers, failed, states: window.mw.states.map((s) => s.state + (s.code ? ":" + s.code : "")) };
      }, (firstExp + 16) * 1000);
      assert.equal(result.failed, null, "no request failed");
      assert.ok(result.answers.length > 20 && result.answers.every((u) => u === "refresher"), JSON.stringify(result.answers));
      assert.deepEqual(result.states, ["connecting", "open"], "never closed, never reconnected");
      assert.ok(issued.length >= 4, `the token was refreshed on the open connection (${issued.length} tokens)`);
      await page.context().close();
    } finally {
      await own.stop();
      own.remove();
    }
  });

// History-room tests: page joins room, recording each rejoin's `recovered` in window.rejoins.
const joinRecording = (page, room) => page.evaluate(async (r) => {
  window.rejoins = [];
  await window.mw.client.joinRoom(r, { onRejoin: (info) => window.rejoins.push(info.recovered) });
}, room);

// Waits until page got probe/said with text in room.
const saidIn = (page, room, text) => page.waitForFunction(([r, t]) => window.mw.pushed.some((m) =>
  m.type === "probe" && m.action === "said" && m.data.room === r && m.data.text === t), [room, text], { timeout: PATIENCE });

// What page saw of room: the said texts and room offsets in arrival order, its rejoins, its close codes.
const seenIn = (page, room) => page.evaluate((r) => ({
  texts: window.mw.pushed.filter((m) => m.type === "probe" && m.action === "said" && m.data.room === r).map((m) => m.data.text),
  offsets: window.mw.pushed.filter((m) => m.type === "probe" && m.data && m.room === r).map((m) => m.offset),
  rejoins: window.rejoins,
  closes: window.mw.states.filter((s) => s.code).map((s) => s.code),
}), room);

test("a history room: what was sent while the page was disconnected arrives once, in order", { timeout: 180000 }, async () => {
  const room = "hist:recover-" + Date.now();
  const a = await clientPage();
  const b = await clientPage();
  await isOpen(a);
  await isOpen(b);
  await joinRecording(a, room);
  const said = (page, text) => saidIn(page, room, text);
  await b.evaluate((r) => window.mw.client.request("probe", "say", { room: r, text: "one" }), room);
  await said(a, "one");
  // the server drops page A, then sends "two" while A waits to reconnect
  await a.evaluate((r) => window.mw.client.send("probe", "dropAndSay", { room: r, text: "two", after: 0.2 }), room);
  await said(a, "two");
  await a.waitForFunction(() => window.rejoins.length === 1, null, { timeout: PATIENCE });
  await b.evaluate((r) => window.mw.client.request("probe", "say", { room: r, text: "three" }), room);
  await said(a, "three");
  const seen = await seenIn(a, room);
  assert.deepEqual(seen.texts, ["one", "two", "three"], "each message once, in order");
  assert.deepEqual(seen.offsets, [1, 2, 3]);
  assert.deepEqual(seen.rejoins, [true], "the rejoin recovered the gap");
  assert.ok(seen.closes.includes(4000), JSON.stringify(seen.closes));
  await a.context().close();
  await b.context().close();
});

test("a history room on Redis: a server restart between two messages, the page shows both, once", { timeout: 180000 }, async () => {
  // Two servers on one Redis: page A is connected to host A, page B to host B. Host A stops
  // while B sends "two" (kept in the room's Redis stream), then starts again; A reconnects to
  // the new process and its rejoin recovers "two" before "three" arrives live.
  const redis = await Redis.start();
  const hostA = await Server.start(copyApp(TEST_APP), ["--redis", redis.url]);
  const hostB = await Server.start(copyApp(TEST_APP), ["--redis", redis.url]);
  try {
    const room = "hist:restart-" + Date.now();
    const a = await clientPage({}, hostA);
    const b = await clientPage({}, hostB);
    await isOpen(a);
    await isOpen(b);
    await joinRecording(a, room);
    const said = (page, text) => saidIn(page, room, text);
    const say = (text) => b.evaluate(([r, t]) => window.mw.client.request("probe", "say", { room: r, text: t }), [room, text]);
    await say("one");
    await said(a, "one");

    assert.deepEqual(await hostA.stop(), { code: 0, signal: null });
    await a.waitForFunction(() => window.mw.client.state === "reconnecting", null, { timeout: PATIENCE });
    await say("two"); // A is away: nobody receives it, the stream keeps it
    await hostA.start();
    await a.waitForFunction(() => window.rejoins.length === 1, null, { timeout: PATIENCE });
    await said(a, "two");
    await say("three");
    await said(a, "three");
    const seen = await seenIn(a, room);
    assert.deepEqual(seen.texts, ["one", "two", "three"], "each message once, in order");
    assert.deepEqual(seen.offsets, [1, 2, 3]);
    assert.deepEqual(seen.rejoins, [true], "the rejoin after the restart recovered the gap");
    await a.context().close();
    await b.context().close();
  } finally {
    for (const host of [hostA, hostB]) {
      await host.stop();
      assert.deepEqual(host.sanitizerReport(), [], host.log());
      host.remove();
    }
    await redis.stop();
  }
});
