// examples/chat/public/app.js: the chat page, on the browser client every moonwire server
// serves at /moonwire.js (replies matched to requests, reconnect with jittered backoff). After
// each (re)connect the page sets its nickname again and rejoins its room with chat/join, whose
// reply brings the member list and the room's recent history (oldest first).
import { connect } from "/moonwire.js";

const $ = (id) => document.getElementById(id);
const statusEl = $("status"), whereEl = $("where");
const nickInput = $("nickname"), roomInput = $("room"), textInput = $("text");
const membersEl = $("members"), memberCount = $("member-count"), messagesEl = $("messages");

const client = connect(); // ws(s)://this host/ws
let clientId = null;
// What the server accepted; kept per tab so a reload (or a reconnect) restores it.
let nickname = sessionStorage.getItem("chat.nickname") || "";
let wantedRoom = sessionStorage.getItem("chat.room") || ""; // rejoined after reconnecting
let joinedRoom = null; // the room this connection is in

nickInput.value = nickname;
if (wantedRoom) roomInput.value = wantedRoom;

// ---- rendering -------------------------------------------------------------------------

function setStatus(state, text) {
  statusEl.className = "status " + state;
  statusEl.dataset.state = state;
  statusEl.textContent = text;
  const up = state === "connected";
  $("nick-btn").disabled = !up;
  $("join-btn").disabled = !up;
  updateSendForm();
}

function updateSendForm() {
  const ok = client.state === "open" && !!joinedRoom;
  textInput.disabled = !ok;
  $("send-btn").disabled = !ok;
  whereEl.textContent = joinedRoom
    ? "In #" + joinedRoom + " as " + (nickname || "a guest") + "."
    : "Not in a room yet. Pick a nickname, then join a room.";
}

function addLine(kind, text, meta) {
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
  messagesEl.appendChild(li);
  while (messagesEl.children.length > 500) messagesEl.removeChild(messagesEl.firstChild);
  if (atBottom) messagesEl.scrollTop = messagesEl.scrollHeight;
}

// d = {room, clientId, nickname, text, at}: a pushed chat/message or a history entry.
function addMessage(d, extraClass) {
  addLine((d.clientId === clientId ? "message mine" : "message") + (extraClass || ""), d.text,
    d.nickname + " · " + new Date(d.at || Date.now()).toLocaleTimeString());
}

function showError(err) {
  addLine("error", "Error: " + err.message, err.code ? "code " + err.code : "");
}

// An empty list may arrive as {} (the server's JSON encoder has no empty-array marker).
const asArray = (v) => (Array.isArray(v) ? v : []);

function renderMembers(list) {
  const members = asArray(list);
  membersEl.textContent = "";
  for (const m of members) {
    const li = document.createElement("li");
    li.textContent = m.nickname + (m.clientId === clientId ? " (you)" : "");
    li.title = m.clientId;
    if (m.clientId === clientId) li.className = "me";
    membersEl.appendChild(li);
  }
  memberCount.textContent = joinedRoom ? "(" + members.length + ")" : "";
}

// ---- actions ---------------------------------------------------------------------------

const chat = (action, data) => client.request("chat", action, data);

async function setNickname(nick) {
  const res = await chat("setNickname", { nickname: nick });
  nickname = res.nickname;
  sessionStorage.setItem("chat.nickname", nickname);
  nickInput.value = nickname;
  updateSendForm();
  return nickname;
}

async function join(room, rejoining) {
  const res = await chat("join", { room: room });
  const switched = joinedRoom !== res.room;
  joinedRoom = wantedRoom = res.room;
  sessionStorage.setItem("chat.room", wantedRoom);
  roomInput.value = joinedRoom;
  if (res.history !== undefined) {
    // The reply has the room's recent messages: show exactly those (after a reconnect this
    // also fills in what was said while this tab was away).
    messagesEl.textContent = "";
    for (const d of asArray(res.history)) addMessage(d, " history");
  } else if (switched && !rejoining) {
    messagesEl.textContent = "";
  }
  renderMembers(res.members);
  updateSendForm();
  addLine("system", (rejoining ? "Rejoined #" : "Joined #") + joinedRoom + ".");
  textInput.focus();
}

// After (re)connecting the server knows nothing about us: send the nickname, rejoin the room.
async function restore() {
  try {
    if (nickname) await setNickname(nickname);
    if (wantedRoom) await join(wantedRoom, true);
  } catch (err) {
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
    if (typed && typed !== nickname) await setNickname(typed); // a typed nickname counts
    await join(roomInput.value);
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

client.onStateChange((state, info) => {
  if (state === "open") {
    clientId = info.clientId;
    setStatus("connected", "connected as " + shortId(clientId));
    restore();
  } else if (state === "reconnecting") {
    if (joinedRoom) addLine("system", "Connection lost; reconnecting…");
    joinedRoom = null;
    renderMembers([]);
    setStatus("closed", "disconnected (" + (info.code || "no connection") + "), retrying in " +
      (info.delay / 1000).toFixed(1) + " s…");
  } else if (state === "connecting") {
    setStatus("connecting", "connecting…");
  }
});

client.on("chat", "message", (d) => {
  if (d && d.room === joinedRoom) addMessage(d);
});

client.on("chat", "members", (d) => {
  if (d && d.room === joinedRoom) renderMembers(d.members);
});

client.on("error", "message", (d) => showError(Object.assign(new Error(d.error || "error"), { code: d.code })));
