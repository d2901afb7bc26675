// tests/browser/pages.test.mjs: the example pages (examples/*/public, built on /moonwire.js)
// in a real browser against the real server: hello-world in two tabs (what one tab sends shows
// in the other); chat in several tabs (who is online, join/leave lines, the stored history on
// join, a server restart while one tab is kept away: that tab shows what was said meanwhile
// once, and the vip room gated by a token claim); and the ticker's live prices.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { PATIENCE, ROOT, Redis, Server, copyApp, launchBrowser, mintToken } from "./harness.mjs";

let browser;
const servers = [];
const redises = [];

before(async () => { browser = await launchBrowser(); });

after(async () => {
  if (browser) await browser.close();
  const problems = [];
  for (const server of servers) {
    const exit = await server.stop();
    if (exit && (exit.code !== 0 || exit.signal)) problems.push(`moonwire exited ${JSON.stringify(exit)} on SIGTERM`);
    if (server.sanitizerReport().length) problems.push(server.log());
    server.remove();
  }
  for (const redis of redises) await redis.stop();
  assert.deepEqual(problems, []);
});

async function serveExample(name, args = []) {
  const server = await Server.start(copyApp(path.join(ROOT, "examples", name)), args);
  servers.push(server);
  return server;
}

// A tab in its own browser context (as separate as two browsers: own sessionStorage).
async function tab(server) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (err) => console.error("page error:", err));
  page.frames = []; // every JSON frame the page receives over its WebSockets
  page.on("websocket", (ws) => ws.on("framereceived", ({ payload }) => {
    try { page.frames.push(JSON.parse(payload)); } catch { /* not JSON */ }
  }));
  await page.goto(server.origin + "/");
  return page;
}

const connected = (page, timeout = PATIENCE) =>
  page.waitForSelector('#status[data-state="connected"]', { timeout });

const unique = (prefix) => prefix + "-" + Math.random().toString(36).slice(2, 8);

test("hello-world: a greeting from tab 1 shows in tab 2", { timeout: 180000 }, async () => {
  const server = await serveExample("hello-world");
  const [one, two] = [await tab(server), await tab(server)];
  await connected(one);
  await connected(two);
  // The feed names the clientId the server logged for this connection.
  const feedText = await two.textContent("#feed");
  const clientId = /clientId ([A-Za-z0-9_-]{16,})/.exec(feedText);
  assert.ok(clientId, feedText);
  assert.ok(server.log().includes(clientId[1]), "the server logged the same clientId on connect");
  // Both tabs are on the one worker, so their clientIds share the worker's tag: the status
  // shows a part that differs, and it is part of this tab's own clientId.
  const labels = [await one.textContent("#status"), await two.textContent("#status")];
  assert.match(labels[0], /^connected as \S{8}$/);
  assert.notEqual(labels[0], labels[1], "two tabs show different labels");
  assert.ok(clientId[1].endsWith(labels[1].slice("connected as ".length)), `${labels[1]} vs ${clientId[1]}`);

  const text = unique("hello from tab 1");
  await one.fill("#name", "Ada");
  await one.fill("#message", text);
  await one.click("#send");
  await two.waitForFunction((t) => [...document.querySelectorAll("#feed li.greeting")]
    .some((li) => li.textContent.includes("Ada: " + t)), text, { timeout: PATIENCE });
  await one.waitForFunction((t) => document.querySelector("#feed").textContent.includes(t), text, { timeout: PATIENCE });
  assert.equal(await one.inputValue("#message"), "", "the message box is cleared");
  await one.context().close();
  await two.context().close();
});

// A chat tab whose WebSocket goes through a route that records every frame the page receives
// (page.frames) and, while gate.closed is true, refuses new connections (the tab keeps
// retrying): so the tab can be kept away while the others chat.
async function chatTab(server, { query = "", gate = { closed: false } } = {}) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (err) => console.error("page error:", err));
  page.frames = [];
  page.gate = gate;
  await page.routeWebSocket((url) => url.pathname === "/ws", (ws) => {
    if (gate.closed) { ws.close({ code: 1011, reason: "kept away by the test" }); return; }
    const upstream = ws.connectToServer();
    upstream.onMessage((payload) => {
      try { page.frames.push(JSON.parse(payload)); } catch { /* not JSON */ }
      ws.send(payload);
    });
  });
  await page.goto(server.origin + "/" + query);
  return page;
}

const whereIs = (page, room, name) =>
  page.waitForFunction(([r, n]) => document.querySelector("#where").textContent === `In #${r} as ${n}.`,
    [room, name], { timeout: PATIENCE });

// Tab joins `room` with the page's own form (as `nick`, unless it is signed in as `nick`).
async function joinChat(page, nick, room, signedIn = false) {
  await connected(page);
  if (!signedIn) await page.fill("#nickname", nick);
  await page.fill("#room", room);
  await page.click("#join-btn");
  await whereIs(page, room, nick);
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.click("#send-btn");
}

const hasLine = (page, selector, text, timeout = PATIENCE) =>
  page.waitForFunction(([s, t]) => [...document.querySelectorAll(s)].some((li) => li.textContent.includes(t)),
    [selector, text], { timeout });

// How many message lines have exactly this text.
const countMessages = (page, text) => page.$$eval("#messages li.message .text",
  (els, t) => els.filter((el) => el.textContent === t).length, text);

// Waits until the tab's "Online" list is `expected` (sorted), e.g. ["Ada (you)", "Bob"].
async function online(page, expected) {
  await page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll("#members li")]
    .map((li) => li.textContent).sort()) === JSON.stringify(want), [...expected].sort(), { timeout: PATIENCE })
    .catch(async (err) => {
      const got = await page.$$eval("#members li", (lis) => lis.map((li) => li.textContent));
      throw new Error(`online list ${JSON.stringify(got)}, expected ${JSON.stringify(expected)}: ${err.message}`);
    });
}

const CHAT_DEV_SECRET = "chat-example-dev-secret-change-me-0123456789"; // examples/chat/app.lua

test("chat: presence, join/leave, history on join, a restart loses nothing, the vip room", { timeout: 300000 }, async () => {
  // With Redis the rooms' history outlives the server, so the restart is recovered by moonwire.js.
  const redis = await Redis.start();
  redises.push(redis);
  const server = await serveExample("chat", ["--redis", redis.url]);
  const room = unique("room");
  const ada = await chatTab(server);
  await joinChat(ada, "Ada", room);
  await online(ada, ["Ada (you)"]);
  const early = unique("said before Bob came");
  await say(ada, early);
  await hasLine(ada, "#messages li.message.mine", early);

  // History on join: Bob's page asks chat/history after joining and shows the stored messages.
  const bob = await chatTab(server);
  await joinChat(bob, "Bob", room);
  await hasLine(bob, "#messages li.message.history", early);
  const joined = bob.frames.find((f) => f.type === "system" && f.action === "joinRoom" && f.response);
  assert.equal(joined.response.success, true, JSON.stringify(joined));
  assert.equal(typeof joined.response.data.epoch, "string", "the room has history");
  const stored = bob.frames.find((f) => f.type === "chat" && f.action === "history" && f.response);
  assert.ok(stored.response.messages.some((m) => m.text === early), JSON.stringify(stored));
  assert.equal(await countMessages(bob, early), 1);

  // Who is online: presence, with nicknames for guests; join/leave lines.
  await online(ada, ["Ada (you)", "Bob"]);
  await online(bob, ["Ada", "Bob (you)"]);
  await hasLine(ada, "#messages li.presence", "Bob joined.");
  const cy = await chatTab(server);
  await joinChat(cy, "Cy", room);
  await online(ada, ["Ada (you)", "Bob", "Cy"]);
  await hasLine(ada, "#messages li.presence", "Cy joined.");
  await cy.context().close();
  await hasLine(ada, "#messages li.presence", "Cy left.");
  await online(ada, ["Ada (you)", "Bob"]);
  await online(bob, ["Ada", "Bob (you)"]);

  const toBob = unique("hi Bob");
  await say(ada, toBob);
  await hasLine(bob, "#messages li.message", toBob);
  const toAda = unique("hi Ada");
  await say(bob, toAda);
  await hasLine(ada, "#messages li.message", toAda);

  // A restart while Bob is kept away: Ada comes back and says something; then Bob comes back,
  // moonwire.js rejoins with `since` and Bob's page shows what Ada said, once.
  bob.gate.closed = true;
  const exit = await server.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  await ada.waitForSelector('#status[data-state="closed"]', { timeout: PATIENCE });
  await bob.waitForSelector('#status[data-state="closed"]', { timeout: PATIENCE });
  await server.start();
  await whereIs(ada, room, "Ada");
  await online(ada, ["Ada (you)"]);
  const whileAway = unique("said while Bob was away");
  await say(ada, whileAway);
  await hasLine(ada, "#messages li.message.mine", whileAway);
  assert.equal(await bob.textContent("#where"), `Rejoining #${room}…`);
  bob.gate.closed = false;
  await whereIs(bob, room, "Bob");
  await hasLine(bob, "#messages li.message", whileAway);
  await hasLine(bob, "#messages li.system", "Reconnected; nothing was lost.");
  const rejoin = bob.frames.filter((f) => f.type === "system" && f.action === "joinRoom" && f.response).pop();
  assert.equal(rejoin.response.data.recovered, true, JSON.stringify(rejoin));
  await online(ada, ["Ada (you)", "Bob"]);
  await online(bob, ["Ada", "Bob (you)"]);
  const afterRestart = unique("back again");
  await say(bob, afterRestart);
  await hasLine(ada, "#messages li.message", afterRestart);
  await hasLine(bob, "#messages li.message.mine", afterRestart);
  for (const text of [early, toBob, toAda, whileAway, afterRestart]) {
    assert.equal(await countMessages(bob, text), 1, `Bob's page shows "${text}" once`);
  }
  assert.equal(await countMessages(ada, whileAway), 1);

  // vip:* rooms: refused without the vip claim (Bob stays where he is), allowed with it.
  await bob.fill("#room", "vip:lounge");
  await bob.click("#join-btn");
  await hasLine(bob, "#messages li.error", "VIP rooms need a token with the vip claim");
  await whereIs(bob, room, "Bob");
  const plain = await chatTab(server, { query: "?token=" + mintToken({ sub: "pat", exp: Math.floor(Date.now() / 1000) + 600 }, CHAT_DEV_SECRET) });
  await connected(plain);
  await plain.fill("#room", "vip:lounge");
  await plain.click("#join-btn");
  await hasLine(plain, "#messages li.error", "VIP rooms need a token with the vip claim");
  const vera = await chatTab(server, { query: "?token=" + mintToken({ sub: "vera", vip: true, exp: Math.floor(Date.now() / 1000) + 600 }, CHAT_DEV_SECRET) });
  await joinChat(vera, "vera", "vip:lounge", true);
  assert.equal(await vera.isDisabled("#nickname"), true, "a signed-in tab is named by its token");
  await online(vera, ["vera (you)"]);
  const vipText = unique("VIPs only");
  await say(vera, vipText);
  await hasLine(vera, "#messages li.message.mine", "vera · ");
  await hasLine(vera, "#messages li.message.mine", vipText);
  for (const page of [ada, bob, plain, vera]) await page.context().close();
});

test("chat: a single-node restart loses the rooms' history: the page reloads from the database, once", { timeout: 180000 }, async () => {
  const server = await serveExample("chat");
  const room = unique("room");
  const [ada, bob] = [await chatTab(server), await chatTab(server)];
  await joinChat(ada, "Ada", room);
  await joinChat(bob, "Bob", room);
  const before = unique("before the restart");
  await say(bob, before);
  await hasLine(ada, "#messages li.message", before);
  bob.gate.closed = true;
  assert.deepEqual(await server.stop(), { code: 0, signal: null });
  await bob.waitForSelector('#status[data-state="closed"]', { timeout: PATIENCE });
  await server.start();
  await whereIs(ada, room, "Ada");
  const whileAway = unique("said while Bob was away");
  await say(ada, whileAway);
  await hasLine(ada, "#messages li.message.mine", whileAway);
  bob.gate.closed = false;
  await whereIs(bob, room, "Bob");
  await hasLine(bob, "#messages li.system", "the last messages were reloaded");
  const rejoin = bob.frames.filter((f) => f.type === "system" && f.action === "joinRoom" && f.response).pop();
  assert.equal(rejoin.response.data.recovered, false, JSON.stringify(rejoin));
  await hasLine(bob, "#messages li.message.history", whileAway);
  await online(bob, ["Ada", "Bob (you)"]);
  const after = unique("after the restart");
  await say(ada, after);
  await hasLine(bob, "#messages li.message", after);
  for (const text of [before, whileAway, after]) {
    assert.equal(await countMessages(bob, text), 1, `Bob's page shows "${text}" once`);
  }
  for (const page of [ada, bob]) await page.context().close();
});

test("ticker: ticked symbols get live prices", { timeout: 180000 }, async () => {
  const server = await serveExample("ticker");
  const page = await tab(server);
  await connected(page);
  // First visit: AAPL, MSFT and GOOG are ticked; their rows count updates (two a second).
  await page.waitForFunction(() => {
    const row = [...document.querySelectorAll("#rows tr")].find((tr) => tr.textContent.includes("AAPL"));
    return row && !row.classList.contains("off") && Number(row.lastElementChild.textContent) >= 2;
  }, null, { timeout: PATIENCE });
  const aapl = page.locator("#rows tr", { hasText: "AAPL" });
  await aapl.locator("input[type=checkbox]").uncheck();
  await page.waitForFunction(() => [...document.querySelectorAll("#rows tr")]
    .find((tr) => tr.textContent.includes("AAPL")).classList.contains("off"), null, { timeout: PATIENCE });
  await page.context().close();
});
