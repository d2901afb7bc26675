// tests/browser/pages.test.mjs: the example pages (examples/*/public, built on /moonwire.js)
// in a real browser against the real server: hello-world and chat in two tabs each (what one
// tab sends shows in the other), chat's history on join and its rejoin after a restart, and
// the ticker's live prices.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { PATIENCE, ROOT, Server, copyApp, launchBrowser } from "./harness.mjs";

let browser;
const servers = [];

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
  assert.deepEqual(problems, []);
});

async function serveExample(name) {
  const server = await Server.start(copyApp(path.join(ROOT, "examples", name)));
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

// Tab joins `room` as `nick` with the page's own form.
async function joinChat(page, nick, room) {
  await connected(page);
  await page.fill("#nickname", nick);
  await page.fill("#room", room);
  await page.click("#join-btn");
  await page.waitForFunction(([r, n]) => document.querySelector("#where").textContent === `In #${r} as ${n}.`,
    [room, nick], { timeout: PATIENCE });
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.click("#send-btn");
}

const hasLine = (page, selector, text, timeout = PATIENCE) =>
  page.waitForFunction(([s, t]) => [...document.querySelectorAll(s)].some((li) => li.textContent.includes(t)),
    [selector, text], { timeout });

const members = (page) => page.$$eval("#members li", (lis) => lis.map((li) => li.textContent));

test("chat: two tabs in one room, history on join, rejoin after a restart", { timeout: 180000 }, async (t) => {
  const server = await serveExample("chat");
  const room = unique("room");
  const ada = await tab(server);
  await joinChat(ada, "Ada", room);
  const early = unique("said before Bob came");
  await say(ada, early);
  await hasLine(ada, "#messages li.message.mine", early);

  const bob = await tab(server);
  await joinChat(bob, "Bob", room);
  const joinReply = bob.frames.find((f) => f.type === "chat" && f.action === "join" && f.response);
  assert.ok(joinReply, "bob's page got the join reply");
  assert.ok(joinReply.response.history !== undefined, "chat/join replies with the room's history");
  await hasLine(bob, "#messages li.message.history", early);
  const history = Array.isArray(joinReply.response.history) ? joinReply.response.history : [];
  assert.ok(history.some((m) => m.text === early), "the history has what Ada said before Bob came");
  assert.equal(await bob.locator("#messages li.history").count(), history.length,
    "one line per history entry");
  await ada.waitForFunction(() => document.querySelectorAll("#members li").length === 2, null, { timeout: PATIENCE });
  assert.deepEqual((await members(bob)).sort(), ["Ada", "Bob (you)"]);
  assert.deepEqual((await members(ada)).sort(), ["Ada (you)", "Bob"]);
  assert.notEqual(await ada.textContent("#status"), await bob.textContent("#status"),
    "two tabs show different 'connected as' labels");

  const toBob = unique("hi Bob");
  await say(ada, toBob);
  await hasLine(bob, "#messages li.message", toBob);
  const toAda = unique("hi Ada");
  await say(bob, toAda);
  await hasLine(ada, "#messages li.message", toAda);

  // A restart: both pages reconnect, set their nickname and rejoin the room by themselves.
  const exit = await server.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  await ada.waitForSelector('#status[data-state="closed"]', { timeout: PATIENCE });
  await server.start();
  for (const [page, nick] of [[ada, "Ada"], [bob, "Bob"]]) {
    await page.waitForFunction(([r, n]) => document.querySelector("#where").textContent === `In #${r} as ${n}.`,
      [room, nick], { timeout: PATIENCE });
  }
  await ada.waitForFunction(() => document.querySelectorAll("#members li").length === 2, null, { timeout: PATIENCE });
  const afterRestart = unique("back again");
  await say(ada, afterRestart);
  await hasLine(bob, "#messages li.message", afterRestart);
  await ada.context().close();
  await bob.context().close();
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
