// tests/browser/admin.test.mjs: the /admin page (clients/admin/index.html) in headless chromium
// against a real server with an API key: a wrong key is refused, the right one signs in (kept
// in sessionStorage only, so a reload stays signed in and a new tab does not), a WebSocket
// connection made by the test shows in the connections and its room in the rooms list, the
// client lookup finds it and the Disconnect button closes it; the page fits a phone's width.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PATIENCE, Server, launchBrowser } from "./harness.mjs";

const KEY = "admin-page-test-key-0123456789";
let browser, server;

before(async () => {
  browser = await launchBrowser();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "moonwire-admin-"));
  fs.mkdirSync(path.join(dir, "controllers"));
  fs.writeFileSync(path.join(dir, "app.lua"), `return { api = { key = ${JSON.stringify(KEY)} } }\n`);
  server = await Server.start(dir);
});

after(async () => {
  if (browser) await browser.close();
  if (!server) return;
  const exit = await server.stop();
  const report = server.sanitizerReport();
  server.remove();
  assert.ok(exit && exit.code === 0 && !exit.signal, `moonwire exited ${JSON.stringify(exit)}`);
  assert.deepEqual(report, []);
});

async function adminTab(viewport) {
  const context = await browser.newContext(viewport ? { viewport } : {});
  const page = await context.newPage();
  page.errors = [];
  page.on("pageerror", (err) => page.errors.push(String(err)));
  page.on("dialog", (d) => d.accept()); // the Disconnect button asks for a confirmation
  await page.goto(server.origin + "/admin");
  return page;
}

const text = (page, sel) => page.textContent(sel);

test("admin: sign in, see a connection appear, look it up and disconnect it", { timeout: 180000 }, async () => {
  const page = await adminTab();
  await page.waitForSelector("#login:not([hidden])", { timeout: PATIENCE });
  assert.equal(await page.isHidden("#dash"), true);

  await page.fill("#key", "wrong-key-0123456789abcdef");
  await page.click("#login-button");
  await page.waitForFunction(() => document.querySelector("#login-error").textContent.includes("Wrong API key"),
    null, { timeout: PATIENCE });
  assert.equal(await page.evaluate(() => sessionStorage.getItem("moonwire.apiKey")), null);

  await page.fill("#key", KEY);
  await page.click("#login-button");
  await page.waitForSelector("#dash:not([hidden])", { timeout: PATIENCE });
  await page.waitForFunction(() => document.querySelector("#status").textContent === "live", null, { timeout: PATIENCE });
  assert.equal(await page.evaluate(() => sessionStorage.getItem("moonwire.apiKey")), KEY);
  assert.equal(await page.evaluate(() => localStorage.length), 0, "the key is not kept beyond the tab");
  assert.equal(await text(page, "#k-connections"), "0");

  // a WebSocket client, made by the test in another tab, joins a room
  const client = await (await browser.newContext()).newPage();
  await client.goto(server.origin + "/health");
  const clientId = await client.evaluate((url) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    window.wsClosed = null;
    ws.onclose = (e) => { window.wsClosed = { code: e.code, reason: e.reason }; };
    ws.onerror = reject;
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.action === "connected") {
        ws.send(JSON.stringify({ type: "system", action: "joinRoom", data: { roomName: "admin-test-room" }, requestId: 1 }));
      } else if (m.requestId === 1) {
        resolve(window.clientId);
      }
      if (m.data && m.data.clientId) window.clientId = m.data.clientId;
    };
  }), server.origin.replace("http", "ws") + "/ws");
  assert.match(clientId, /^[A-Za-z0-9_-]{16,}$/);

  await page.waitForFunction(() => document.querySelector("#k-connections").textContent === "1", null, { timeout: PATIENCE });
  await page.waitForFunction(() => [...document.querySelectorAll("#rooms tbody tr")]
    .some((tr) => tr.textContent.includes("admin-test-room") && tr.cells[1].textContent === "1"), null, { timeout: PATIENCE });
  assert.match(await text(page, "#workers tbody"), /\d/);

  // look the client up and disconnect it from the page
  await page.fill("#lookup-id", clientId);
  await page.click("#lookup button");
  await page.waitForSelector("#client-info dl", { timeout: PATIENCE });
  const info = await text(page, "#client-info");
  assert.ok(info.includes(clientId) && info.includes("admin-test-room") && info.includes("anonymous"), info);
  await page.click("#disconnect");
  await page.waitForFunction(() => (document.querySelector("#disconnect-result") || {}).textContent === "Disconnected",
    null, { timeout: PATIENCE });
  const closed = await client.waitForFunction(() => window.wsClosed, null, { timeout: PATIENCE });
  assert.equal((await closed.jsonValue()).code, 1000);
  await page.waitForFunction(() => document.querySelector("#k-connections").textContent === "0", null, { timeout: PATIENCE });

  // unknown ids are said so
  await page.fill("#lookup-id", "no-such-client-0123456789");
  await page.click("#lookup button");
  await page.waitForFunction(() => document.querySelector("#client-info").textContent.includes("No client"), null, { timeout: PATIENCE });

  // a reload stays signed in (sessionStorage); signing out forgets the key
  await page.reload();
  await page.waitForSelector("#dash:not([hidden])", { timeout: PATIENCE });
  await page.click("#logout");
  await page.waitForSelector("#login:not([hidden])", { timeout: PATIENCE });
  assert.equal(await page.evaluate(() => sessionStorage.getItem("moonwire.apiKey")), null);
  assert.deepEqual(page.errors, []);
  await client.context().close();
  await page.context().close();
});

test("admin: works at a phone's width", { timeout: 120000 }, async () => {
  const page = await adminTab({ width: 375, height: 740 });
  await page.fill("#key", KEY);
  await page.click("#login-button");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "live", null, { timeout: PATIENCE });
  const fits = await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
  assert.ok(fits, "no horizontal scrolling of the page at 375 px");
  const box = await page.locator("#chart").boundingBox();
  assert.ok(box && box.width > 200 && box.width <= 375, JSON.stringify(box));
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
