// examples/ticker/public/app.js: the ticker page, on the browser client every moonwire server
// serves at /moonwire.js (replies matched to requests, reconnect with jittered backoff). A
// checkbox subscribes to a symbol's room through ticker/subscribe (whose reply carries the last
// prices); prices arrive as {"type":"ticker","action":"price","data":{symbol, price, change, at}}.
// After each (re)connect the page subscribes again to what was ticked (kept in localStorage).
import { connect } from "/moonwire.js";

const $ = (id) => document.getElementById(id);
const statusEl = $("status"), workerEl = $("worker"), rowsEl = $("rows"), rateEl = $("rate");
const logEl = $("log");
const STORE_KEY = "ticker.symbols";

const client = connect(); // ws(s)://this host/ws
let symbols = [];              // known symbols, in the server's order
const rows = new Map();        // symbol -> {tr, box, price, change, updated, count, at, n}
const live = new Set();        // symbols this connection is subscribed to
let wanted = new Set(readWanted()); // what the user ticked; survives reconnects and reloads
const arrivals = [];           // receive times of the last few seconds' prices

function readWanted() {
  try {
    const v = JSON.parse(localStorage.getItem(STORE_KEY));
    if (Array.isArray(v)) return v.filter((s) => typeof s === "string");
  } catch (e) { /* first visit or bad data */ }
  return ["AAPL", "MSFT", "GOOG"];
}
function saveWanted() { localStorage.setItem(STORE_KEY, JSON.stringify([...wanted])); }

// An empty list may arrive as {} (the server's JSON encoder has no empty-array marker).
const asArray = (v) => (Array.isArray(v) ? v : []);
const connected = () => client.state === "open";

// ---- rendering -------------------------------------------------------------------------

function setStatus(state, text) {
  statusEl.className = "status " + state;
  statusEl.dataset.state = state;
  statusEl.textContent = text;
  updateControls();
}

function log(kind, text) {
  const li = document.createElement("li");
  li.className = kind;
  li.textContent = new Date().toLocaleTimeString() + " · " + text;
  logEl.insertBefore(li, logEl.firstChild);
  while (logEl.children.length > 8) logEl.removeChild(logEl.lastChild);
}

function showError(err) { log("error", "Error: " + err.message + (err.code ? " (" + err.code + ")" : "")); }

function cell(tr, className) {
  const td = document.createElement("td");
  td.className = className;
  tr.appendChild(td);
  return td;
}

function buildTable(list) {
  if (list.join() === symbols.join()) return; // same symbols: keep the prices on screen
  symbols = list;
  rows.clear();
  rowsEl.textContent = "";
  for (const sym of symbols) {
    const tr = document.createElement("tr");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.setAttribute("aria-label", "subscribe to " + sym);
    box.addEventListener("change", () => toggle(sym, box.checked));
    cell(tr, "sub").appendChild(box);
    cell(tr, "symbol").textContent = sym;
    const row = {
      tr, box, price: cell(tr, "num"), change: cell(tr, "num"), updated: cell(tr, "num"),
      count: cell(tr, "num"), at: 0, n: 0,
    };
    row.price.textContent = row.change.textContent = row.updated.textContent = "—";
    row.count.textContent = "0";
    rows.set(sym, row);
    rowsEl.appendChild(tr);
  }
  updateControls();
}

function updateControls() {
  const up = connected();
  for (const [sym, row] of rows) {
    row.box.checked = wanted.has(sym);
    row.box.disabled = !up;
    row.tr.className = live.has(sym) ? "" : "off";
  }
  $("all").disabled = !up || symbols.every((s) => live.has(s));
  $("none").disabled = !up || live.size === 0;
}

function flash(td, cls) {
  td.classList.remove("flash-up", "flash-down");
  void td.offsetWidth; // restart the animation
  td.classList.add(cls);
}

// data = {symbol, price, change, at}; counted = a live push (not the snapshot of a reply)
function showPrice(data, counted) {
  const row = rows.get(data.symbol);
  if (!row || typeof data.price !== "number" || !(data.at >= row.at)) return; // unknown or older
  row.at = data.at;
  const change = typeof data.change === "number" ? data.change : 0;
  const dir = change > 0 ? "up" : change < 0 ? "down" : "";
  row.price.textContent = data.price.toFixed(2);
  row.price.className = "num " + dir;
  row.change.textContent = (change > 0 ? "+" : "") + change.toFixed(2);
  row.change.className = "num " + dir;
  row.updated.textContent = new Date(data.at).toLocaleTimeString();
  if (counted) {
    row.count.textContent = String(++row.n);
    if (dir) flash(row.price, "flash-" + dir);
  }
}

function updateRate() {
  const now = performance.now();
  while (arrivals.length && arrivals[0] < now - 5000) arrivals.shift();
  rateEl.textContent = connected() ? (arrivals.length / 5).toFixed(1) + " updates/s" : "";
}
setInterval(updateRate, 1000);

// ---- actions ---------------------------------------------------------------------------

const ticker = (action, data) => client.request("ticker", action, data);

async function subscribe(list) {
  if (!list.length) return;
  const res = await ticker("subscribe", { symbols: list });
  for (const sym of asArray(res.subscribed)) live.add(sym);
  const prices = res.prices && typeof res.prices === "object" ? res.prices : {};
  for (const sym of Object.keys(prices)) showPrice(prices[sym], false);
  updateControls();
}

async function unsubscribe(list) {
  if (!list.length) return;
  const res = await ticker("unsubscribe", { symbols: list });
  for (const sym of asArray(res.unsubscribed)) live.delete(sym);
  updateControls();
}

async function toggle(sym, on) {
  if (on) wanted.add(sym); else wanted.delete(sym);
  saveWanted();
  try {
    if (on) await subscribe([sym]); else await unsubscribe([sym]);
  } catch (err) {
    if (on) wanted.delete(sym); else wanted.add(sym); // the server said no: undo the tick
    saveWanted();
    updateControls();
    showError(err);
  }
}

$("all").addEventListener("click", async () => {
  const list = symbols.filter((s) => !live.has(s));
  list.forEach((s) => wanted.add(s));
  saveWanted();
  try { await subscribe(list); } catch (err) {
    list.forEach((s) => wanted.delete(s)); // all or nothing: the server subscribed to none
    saveWanted();
    updateControls();
    showError(err);
  }
});

$("none").addEventListener("click", async () => {
  const list = [...live];
  wanted.clear();
  saveWanted();
  try { await unsubscribe(list); } catch (err) { updateControls(); showError(err); }
});

// After (re)connecting the server knows nothing about us: ask who we are talking to and
// what there is, then subscribe again to what was ticked.
async function restore() {
  try {
    const me = await ticker("whoami");
    workerEl.textContent = "Served by worker " + me.workerId + ".";
    buildTable(asArray((await ticker("symbols")).symbols));
    wanted = new Set([...wanted].filter((s) => rows.has(s))); // forget symbols that went away
    saveWanted();
    await subscribe([...wanted]);
    if (wanted.size) log("info", "Subscribed to " + [...wanted].join(", ") + ".");
  } catch (err) {
    if (err.code !== "disconnected" && err.code !== "closed") showError(err);
  }
}

// ---- the connection --------------------------------------------------------------------

// A clientId starts with its worker's tag (the same for every tab on that worker): the end
// is the random part that tells tabs apart.
const shortId = (id) => id.slice(-8);

client.onStateChange((state, info) => {
  if (state === "open") {
    setStatus("connected", "connected as " + shortId(info.clientId));
    restore();
  } else if (state === "reconnecting") {
    if (live.size) log("info", "Connection lost; reconnecting…");
    live.clear();
    workerEl.textContent = "";
    setStatus("closed", "disconnected (" + (info.code || "no connection") + "), retrying in " +
      (info.delay / 1000).toFixed(1) + " s…");
  } else if (state === "connecting") {
    setStatus("connecting", "connecting…");
  }
});

client.on("ticker", "price", (d) => {
  if (!d || !live.has(d.symbol)) return; // one already on its way when we unsubscribed
  arrivals.push(performance.now());
  showPrice(d, true);
});

client.on("error", "message", (d) => showError(Object.assign(new Error(d.error || "error"), { code: d.code })));
