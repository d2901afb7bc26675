// tests/browser/compression.test.mjs: clients/js/moonwire.js in Chromium against a moonwire
// started with --compression (DESIGN §15). Chromium offers permessage-deflate by default and
// compresses every message it sends once it is negotiated, so both directions are exercised:
// requests with small and large data, a room message to two tabs, and the server's counters.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { PATIENCE, Server, TEST_APP, copyApp, launchBrowser } from "./harness.mjs";

const ACCEPTED = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
let server, browser;

before(async () => {
  server = await Server.start(copyApp(TEST_APP), ["--compression"]);
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

async function clientPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("pageerror", (err) => console.error("page error:", err));
  await page.goto(server.origin + "/");
  await page.evaluate(async () => {
    const { connect } = await import("/moonwire.js");
    const client = connect({});
    const pushed = [];
    client.on("*", "*", (data, message) => pushed.push(message));
    window.mw = { client, pushed };
  });
  await page.waitForFunction(() => window.mw.client.state === "open", null, { timeout: PATIENCE });
  return page;
}

/** The sum of a counter over the workers, from /metrics. */
async function counter(name) {
  const text = await (await fetch(server.origin + "/metrics")).text();
  let sum = 0;
  for (const line of text.split("\n")) if (line.startsWith(name + "{")) sum += Number(line.split(" ").pop());
  return sum;
}

test("Chromium negotiates permessage-deflate with no context takeover", { timeout: 120000 }, async () => {
  const page = await clientPage();
  const ext = await page.evaluate(() => new Promise((resolve, reject) => {
    const ws = new WebSocket(location.origin.replace("http", "ws") + "/ws");
    ws.onopen = () => { resolve(ws.extensions); ws.close(); };
    ws.onerror = () => reject(new Error("WebSocket failed"));
  }));
  assert.equal(ext, ACCEPTED);
  await page.context().close();
});

test("moonwire.js requests and room messages, compressed both ways", { timeout: 180000 }, async () => {
  const sentBefore = await counter("moonwire_compression_sent_uncompressed_bytes_total");
  const packedBefore = await counter("moonwire_compression_sent_compressed_bytes_total");
  const receivedBefore = await counter("moonwire_compression_received_uncompressed_bytes_total");
  const a = await clientPage();
  const b = await clientPage();
  const big = { rows: Array.from({ length: 400 }, (_, i) => ({ id: i, name: "row " + i, tags: ["a", "b"] })) };
  const r = await a.evaluate(async (big) => {
    const c = window.mw.client;
    return {
      small: await c.request("probe", "echo", "hi"),
      big: await c.request("probe", "echo", big),
      text: await c.request("probe", "echo", "é".repeat(5000)),
      joined: (await c.joinRoom("zip")).success,
    };
  }, big);
  assert.equal(r.small, "hi");
  assert.deepEqual(r.big, big);
  assert.equal(r.text, "é".repeat(5000));
  assert.equal(r.joined, true);
  assert.equal(await b.evaluate(async () => (await window.mw.client.joinRoom("zip")).success), true);
  const text = "news for the room ".repeat(100);
  const said = await b.evaluate((text) => window.mw.client.request("probe", "say", { room: "zip", text }), text);
  assert.equal(said.delivered, 2);
  for (const page of [a, b]) {
    await page.waitForFunction((text) => window.mw.pushed.some((m) => m.type === "probe" && m.action === "said" &&
      m.data.text === text), text, { timeout: PATIENCE });
  }
  const sent = await counter("moonwire_compression_sent_uncompressed_bytes_total") - sentBefore;
  const packed = await counter("moonwire_compression_sent_compressed_bytes_total") - packedBefore;
  const received = await counter("moonwire_compression_received_uncompressed_bytes_total") - receivedBefore;
  assert.ok(sent > 20000, `the server sent compressed messages (${sent} bytes before compression)`);
  assert.ok(packed > 0 && packed < sent, `and they were smaller (${packed} bytes after)`);
  assert.ok(received > 20000, `Chromium sent compressed messages (${received} bytes inflated)`);
  await a.context().close();
  await b.context().close();
});
