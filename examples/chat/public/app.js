// examples/chat/public/app.js: the chat page, on the browser client every moonwire server
// serves at /moonwire.js. What the page leaves to moonwire.js and the server:
// - joining: client.joinRoom(room) is system/joinRoom, so the room's canJoin (app.lua) decides;
//   after a reconnect moonwire.js joins again by itself and first receives the messages this
//   tab missed (once, in order). onRejoin says whether that worked (recovered) or the page has
//   to reload the room's last messages (chat/history, from the database).
// - who is online: client.presence(room) after each (re)join, then the presence/join and
//   presence/leave events. Guests are shown by their nickname (chat/names, chat/renamed).
// - signing in: ?token=JWT in the page's URL (token.py prints such a URL) goes to connect().
import { connect } from "/moonwire.js";

const $ = (id) => document.getElementById(id);
const statusEl = $("status"), whereEl = $("where");
const nickInput = $("nickname"), roomInput = $("room"), textInput = $("text");
const membersEl = $("members"), memberCount = $("member-count"), messagesEl = $("messages");

const token = new URLSearchParams(location.search).get("token") || undefined;
const client = connect({ token }); // ws(s)://this host/ws, signed in when there is a token

let clientId = null; // this connection's id (a new one after every reconnect)
let userId = null;   // from the token, once the server accepted it
// Kept per tab, so that reloading the tab restores them.
let nickname = sessionStorage.getItem("chat.nickname") || "";
let room = null;     // the room this tab is in; moonwire.js rejoins it after a reconnect
let inRoom = false;  // ... and this connection has joined it (false while reconnecting)

nickInput.value = nickname;
roomInput.value = sessionStorage.getItem("chat.room") || roomInput.value;

// An empty list may arrive as {} (JSON has no empty Lua table).
const asArray = (v) => (Array.isArray(v) ? v : []);
const chat = (action, data) => client.request("chat", action, data);

// ---- messages --------------------------------------------------------------------------

const shown = new Set(); // ids of the messages on screen: each is shown once
let anchor = null;       // the "You joined" line: stored messages go above it, live ones below

function addLine(kind, text, meta, before) {
  const li = document.createElement("li");
  li.className = kind;
  if (meta) {
    const m = document.createElement("div");
    m.className = "meta";
    m.textContent = meta;
    li.appendChild(m);
  }
  const body = document.createElement("div");
  body.className = "text";
  body.textContent = text; // textContent: what people type is never parsed as HTML
  li.appendChild(body);
  const atBottom = messagesEl.scrollTop + messagesEl.clientHeight >= messagesEl.scrollHeight - 8;
  messagesEl.insertBefore(li, before || null);
  while (messagesEl.children.length > 500) messagesEl.removeChild(messagesEl.firstChild);
  if (atBottom) messagesEl.scrollTop = messagesEl.scrollHeight;
  return li;
}

// d = {id, room, clientId, nickname, text, at}: a pushed chat/message or a stored one.
function addMessage(d, stored) {
  if (d.id !== undefined) {
    if (shown.has(String(d.id))) return; // a live message that the history reply also has
    shown.add(String(d.id));
  }
  addLine("message" + (d.clientId === clientId ? " mine" : "") + (stored ? " history" : ""), d.text,
    d.nickname + " · " + new Date(d.at || Date.now()).toLocaleTimeString(), stored ? anchor : null);
}

function showError(err) {
  addLine("error", "Error: " + err.message, err.code ? "code " + err.code : "");
}

// Starts the room's view with `headline`, then puts its last stored messages above that line.
async function loadHistory(headline) {
  messagesEl.textContent = "";
  shown.clear();
  const mine = (anchor = addLine("system", headline));
  const res = await chat("history");
  if (anchor !== mine) return; // the tab moved on meanwhile
  for (const d of asArray(res.messages)) addMessage(d, true);
}

// ---- who is online ---------------------------------------------------------------------

let members = new Map();       // clientId -> {clientId, userId} (userId absent for guests)
const nicknames = new Map();   // clientId -> a guest's nickname
const collectors = new Set();  // lists of the events that arrive while presence requests are out

const nameOf = (id, uid) =>
  uid !== undefined && uid !== null ? String(uid) : nicknames.get(id) || "guest-" + id.slice(-6);

function renderMembers() {
  membersEl.textContent = "";
  for (const m of members.values()) {
    const li = document.createElement("li");
    li.textContent = nameOf(m.clientId, m.userId) + (m.clientId === clientId ? " (you)" : "");
    li.title = m.clientId;
    if (m.clientId === clientId) li.className = "me";
    membersEl.appendChild(li);
  }
  memberCount.textContent = inRoom ? "(" + members.size + ")" : "";
}

// Asks the server for the nicknames of these guests.
async function fetchNames(ids) {
  const guests = ids.filter((id) => { const m = members.get(id); return m && m.userId === undefined; });
  if (guests.length === 0) return;
  const res = await chat("names", { clientIds: guests });
  for (const [id, nick] of Object.entries(res.names || {})) nicknames.set(id, nick);
  renderMembers();
}

function applyPresence(action, d) {
  if (action === "join") members.set(d.clientId, { clientId: d.clientId, userId: d.userId });
  else members.delete(d.clientId);
}

// The room's member list now; events that cross the request are applied on top of it.
async function loadPresence() {
  const forRoom = room;
  const events = [];
  collectors.add(events);
  let list;
  try {
    list = await client.presence(forRoom);
  } finally {
    collectors.delete(events);
  }
  if (room !== forRoom) return;
  members = new Map(asArray(list.clients).map((c) => [c.clientId, c]));
  for (const [action, d] of events) applyPresence(action, d);
  renderMembers();
  await fetchNames([...members.keys()]);
}

client.onPresence("*", async (action, d) => {
  if (d.roomName !== room) return;
  for (const events of collectors) events.push([action, d]);
  const name = () => nameOf(d.clientId, d.userId);
  if (action === "leave") addLine("system presence", name() + " left.");
  applyPresence(action, d);
  renderMembers();
  if (action === "join") {
    try { await fetchNames([d.clientId]); } catch { /* shown as guest-... */ }
    addLine("system presence", name() + " joined.");
  }
});

client.on("chat", "renamed", (d) => {
  const before = nameOf(d.clientId);
  nicknames.set(d.clientId, d.nickname);
  if (members.has(d.clientId)) {
    renderMembers();
    if (d.clientId !== clientId && before !== d.nickname) addLine("system", before + " is now " + d.nickname + ".");
  }
});

// ---- joining ---------------------------------------------------------------------------

function updateForms() {
  const up = client.state === "open";
  $("nick-btn").disabled = !up || !!token;
  nickInput.disabled = !!token;
  $("join-btn").disabled = !up;
  textInput.disabled = $("send-btn").disabled = !(up && inRoom);
  const me = userId !== null ? String(userId) : nickname || "a guest";
  whereEl.textContent = inRoom ? "In #" + room + " as " + me + "."
    : room ? "Rejoining #" + room + "…"
    : "Not in a room yet. Pick a nickname, then join a room.";
}

async function enter(name) {
  name = name.trim();
  const previous = room;
  await client.joinRoom(name, { onRejoin }); // rejects with canJoin's reason (code "refused")
  // The server has left the previous room (one room at a time, app.lua): moonwire.js forgets it.
  if (previous && previous !== name) client.leaveRoom(previous).catch(() => {});
  room = name;
  inRoom = true;
  sessionStorage.setItem("chat.room", room);
  roomInput.value = room;
  members = new Map();
  updateForms();
  textInput.focus();
  await Promise.all([loadHistory("You joined #" + room + "."), loadPresence()]);
}

// After a reconnect moonwire.js joined the room again: info.recovered says whether every
// message sent meanwhile was delivered (before this call), or the page has to reload them.
function onRejoin(info) {
  if (info.refused) { // canJoin says no now (e.g. another token)
    room = null;
    inRoom = false;
    members = new Map();
    renderMembers();
    updateForms();
    showError(new Error("could not rejoin: " + info.error));
    return;
  }
  inRoom = true;
  updateForms();
  if (info.recovered) addLine("system", "Reconnected; nothing was lost.");
  else loadHistory("Reconnected to #" + room + "; the last messages were reloaded.").catch(showError);
  loadPresence().catch(showError);
}

async function setNickname(nick) {
  const res = await chat("setNickname", { nickname: nick });
  nickname = res.nickname;
  sessionStorage.setItem("chat.nickname", nickname);
  nickInput.value = nickname;
  updateForms();
  return nickname;
}

// A new connection knows no nickname: send it again. The room is rejoined by moonwire.js;
// only a freshly loaded tab joins the room it was in before.
async function restore() {
  try {
    if (nickname && !token) await setNickname(nickname);
    const wanted = sessionStorage.getItem("chat.room");
    if (!room && wanted) await enter(wanted);
  } catch (err) {
    if (err.code === "refused") sessionStorage.removeItem("chat.room"); // e.g. a vip room, no token now
    if (err.code !== "disconnected" && err.code !== "closed") showError(err);
  }
}

$("nick-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const nick = await setNickname(nickInput.value);
    addLine("system", "You are now " + nick + ".");
  } catch (err) { showError(err); }
});

$("room-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const typed = nickInput.value.trim();
    if (!token && typed && typed !== nickname) await setNickname(typed); // a typed nickname counts
    await enter(roomInput.value);
  } catch (err) { showError(err); }
});

$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = textInput.value;
  textInput.value = "";
  try {
    await chat("send", { text: text });
  } catch (err) {
    textInput.value = text; // keep what was typed, to send again
    showError(err);
  }
  textInput.focus();
});

// ---- the connection --------------------------------------------------------------------

// A clientId starts with its worker's tag (the same for every tab on that worker): the end
// is the random part that tells tabs apart.
const shortId = (id) => id.slice(-8);

function setStatus(state, text) {
  statusEl.className = "status " + state;
  statusEl.dataset.state = state;
  statusEl.textContent = text;
  updateForms();
}

client.onStateChange((state, info) => {
  if (state === "open") {
    clientId = info.clientId;
    setStatus("connected", "connected as " + shortId(clientId));
    restore();
  } else if (state === "reconnecting") {
    if (inRoom) addLine("system", "Connection lost; reconnecting…");
    inRoom = false;
    members = new Map();
    renderMembers();
    setStatus("closed", "disconnected (" + (info.code || "no connection") + "), retrying in " +
      (info.delay / 1000).toFixed(1) + " s…");
  } else if (state === "connecting") {
    setStatus("connecting", "connecting…");
  } else if (state === "closed") {
    setStatus("closed", "closed (" + (info.code || "") + (info.code === 4401 ? ": the token expired" : "") + ")");
  }
});

client.on("auth", "authenticated", (d) => {
  userId = d.userId;
  nickInput.value = "";
  nickInput.placeholder = "signed in as " + userId;
  updateForms();
});

client.on("chat", "message", (d) => {
  if (d && d.room === room) addMessage(d);
});

client.on("error", "message", (d) => showError(Object.assign(new Error(d.error || "error"), { code: d.code })));
