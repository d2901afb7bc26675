// tests/browser/harness.mjs: what the browser tests share. A real moonwire process on a free
// port (started, stopped with SIGTERM, started again on the same port), headless Debian
// chromium driven by playwright-core, HS256 tokens minted with node's crypto, and bounded waits.
import { spawn, execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const TEST_APP = path.join(ROOT, "tests/browser/app");
export const SECRET = "browser-client-tests-secret-0123456789abcdef"; // as in app/app.lua
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SANITIZER_MARKERS = ["ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"];

/** The binary under test: $MOONWIRE_BIN (relative to the repo root) or build/moonwire. */
export function moonwireBin() {
  const p = process.env.MOONWIRE_BIN || path.join(ROOT, "build/moonwire");
  return path.isAbsolute(p) ? p : path.join(ROOT, p);
}

/** True for an ASan build: it starts and answers more slowly, so waits are stretched. */
export const SANITIZED = (() => {
  try {
    return execFileSync("ldd", [moonwireBin()], { encoding: "utf8", timeout: 10000 }).includes("libasan");
  } catch {
    return false;
  }
})();
export const SLOW = SANITIZED ? 3 : 1;
/** How long to wait for something that should happen: generous, so that a busy machine or the
 * sanitizer build is not a failure; waits end as soon as it happens. */
export const PATIENCE = 15000 * SLOW;

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A copy of an app folder in a temporary directory (so runs never write into the repo). */
export function copyApp(src) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "moonwire-browser-"));
  fs.cpSync(src, dir, { recursive: true, filter: (p) => !["data", "node_modules"].includes(path.basename(p)) });
  return dir;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls fn() until it returns a truthy value (returned) or throws after timeoutMs. */
export async function waitFor(fn, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** One `moonwire serve APP --host 127.0.0.1 --port PORT` (the supervisor and its workers). */
export class Server {
  constructor(appDir, port, args = []) {
    this.appDir = appDir;
    this.port = port;
    this.args = args;
    this.logPath = path.join(appDir, "server.log");
    this.proc = null;
  }

  get origin() { return `http://127.0.0.1:${this.port}`; }

  static async start(appDir, args = []) {
    const server = new Server(appDir, await freePort(), args);
    await server.start();
    return server;
  }

  async start(timeoutMs = 15000 * SLOW) {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MOONWIRE_")));
    const log = fs.openSync(this.logPath, "a");
    const argv = ["serve", this.appDir, "--host", "127.0.0.1", "--port", String(this.port), ...this.args];
    // detached: its own process group, so a stuck server can be killed with its workers
    this.proc = spawn(moonwireBin(), argv, { stdio: ["ignore", log, log], env, detached: true });
    fs.closeSync(log);
    const proc = this.proc;
    this.exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
    let last = "";
    await waitFor(async () => {
      if (proc.exitCode !== null) throw new Error(`moonwire exited (${proc.exitCode}):\n${this.log()}`);
      try {
        const res = await fetch(this.origin + "/health", { signal: AbortSignal.timeout(1000) });
        return res.status === 200;
      } catch (err) {
        last = String(err);
        return false;
      }
    }, timeoutMs, `moonwire on port ${this.port} (${last})`);
  }

  /** SIGTERM, then waits for the exit; returns {code, signal}. Kills the group after the timeout. */
  async stop(timeoutMs = 15000) {
    const proc = this.proc;
    if (!proc) return null;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
    let timer;
    const result = await Promise.race([this.exited, new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs, null); })]);
    clearTimeout(timer);
    if (result) return result;
    try { process.kill(-proc.pid, "SIGKILL"); } catch { /* gone already */ }
    await this.exited;
    throw new Error(`moonwire did not exit within ${timeoutMs} ms of SIGTERM`);
  }

  /** Removes the app copy (and its log) once the server has stopped. */
  remove() {
    fs.rmSync(this.appDir, { recursive: true, force: true });
  }

  log() {
    try { return fs.readFileSync(this.logPath, "utf8"); } catch { return ""; }
  }

  /** The sanitizer reports in the log (empty when clean). */
  sanitizerReport() {
    const text = this.log();
    return SANITIZER_MARKERS.filter((m) => text.includes(m));
  }
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update"],
    timeout: 60000,
  });
}

/** An HS256 JWT for claims, signed with the test app's secret. */
export function mintToken(claims, secret = SECRET) {
  const part = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const input = part({ alg: "HS256", typ: "JWT" }) + "." + part(claims);
  return input + "." + createHmac("sha256", secret).update(input).digest("base64url");
}

/** A private `redis-server` on a free port of 127.0.0.1 (no persistence), for tests that need
 * state to outlive a moonwire process: start() waits until it accepts connections. */
export class Redis {
  static async start() {
    const redis = new Redis();
    redis.port = await freePort();
    redis.proc = spawn("redis-server", ["--port", String(redis.port), "--bind", "127.0.0.1",
      "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    redis.exited = new Promise((resolve) => redis.proc.on("exit", resolve));
    await waitFor(() => new Promise((resolve) => {
      if (redis.proc.exitCode !== null) throw new Error("redis-server exited during start-up");
      const sock = net.connect(redis.port, "127.0.0.1", () => { sock.end(); resolve(true); });
      sock.on("error", () => resolve(false));
    }), 15000 * SLOW, `redis-server on port ${redis.port}`);
    return redis;
  }

  get url() { return `redis://127.0.0.1:${this.port}/0`; }

  async stop() {
    if (this.proc.exitCode === null) this.proc.kill("SIGTERM");
    await this.exited;
  }
}
