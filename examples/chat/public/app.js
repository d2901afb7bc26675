// examples/chat/public/app.js: the chat page's client. Plain WebSocket, wire protocol
// {type, action, data, requestId}: replies carry the same requestId ("response" on success, an
// error frame with data.requestId on failure). Reconnects with backoff and then sets the
// nickname again and rejoins the room it was in.
(function () {
  const $ = (id) => document.getElementById(id);
  const statusEl = $("status"), whereEl = $("where");
  const nickInput = $("nickname"), roomInput = $("room"), textInput = $("text");
  const membersEl = $("members"), memberCount = $("member-count"), messagesEl = $("messages");
  const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  const REQUEST_TIMEOUT_MS = 10000;

  let ws = null;
  let clientId = null;
  let nextRequestId = 1;
  const pending = new Map(); // requestId -> {resolve, reject, timer}
  let retryMs = 500;
  // What the server accepted; kept per tab so a reload (or a reconnect) restores it.
  let nickname = sessionStorage.getItem("chat.nickname") || "";
  let wantedRoom = sessionStorage.getItem("chat.room") || ""; // rejoined after reconnecting
  let joinedRoom = null; // the room this connection is in

  nickInput.value = nickname;
  if (wantedRoom) roomInput.value = wantedRoom;

  // ---- rendering -----------------------------------------------------------------------

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
    const ok = !!(ws && ws.readyState === WebSocket.OPEN && joinedRoom);
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

  // ---- requests ------------------------------------------------------------------------

  function request(action, data) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject(Object.assign(new Error("not connected"), { code: "offline" }));
        return;
      }
      const requestId = nextRequestId++;
      const timer = setTimeout(() => {
        pending.delete(requestId);
        reject(Object.assign(new Error("no reply to " + action), { code: "timeout" }));
      }, REQUEST_TIMEOUT_MS);
      pending.set(requestId, { resolve, reject, timer });
      ws.send(JSON.stringify({ type: "chat", action: action, data: data || {}, requestId: requestId }));
    });
  }

  function settle(requestId, fn, value) {
    const p = pending.get(requestId);
    if (!p) return false;
    pending.delete(requestId);
    clearTimeout(p.timer);
    p[fn](value);
    return true;
  }

  function failAllPending(reason) {
    for (const [id, p] of pending) {
      clearTimeout(p.timer);
      p.reject(Object.assign(new Error(reason), { code: "offline" }));
      pending.delete(id);
    }
  }

  // ---- actions -------------------------------------------------------------------------

  async function setNickname(nick) {
    const res = await request("setNickname", { nickname: nick });
    nickname = res.nickname;
    sessionStorage.setItem("chat.nickname", nickname);
    nickInput.value = nickname;
    updateSendForm();
    return nickname;
  }

  async function join(room, rejoining) {
    const res = await request("join", { room: room });
    const switched = joinedRoom !== res.room;
    joinedRoom = wantedRoom = res.room;
    sessionStorage.setItem("chat.room", wantedRoom);
    roomInput.value = joinedRoom;
    if (switched && !rejoining) messagesEl.textContent = "";
    renderMembers(res.members);
    updateSendForm();
    addLine("system", (rejoining ? "Rejoined #" : "Joined #") + joinedRoom + ".");
    textInput.focus();
  }

  // After (re)connecting: the server forgot us, so send the nickname and rejoin the room.
  async function restore() {
    try {
      if (nickname) await setNickname(nickname);
      if (wantedRoom) await join(wantedRoom, true);
    } catch (err) {
      if (err.code !== "offline") showError(err);
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
      await request("send", { text: text });
    } catch (err) {
      textInput.value = text; // keep what was typed, to send again
      showError(err);
    }
    textInput.focus();
  });

  // ---- the connection ------------------------------------------------------------------

  function onMessage(msg) {
    if (msg.type !== "error" && msg.requestId !== undefined && settle(msg.requestId, "resolve", msg.response)) return;
    if (msg.type === "error") {
      const d = msg.data || {};
      const err = Object.assign(new Error(d.error || "error"), { code: d.code });
      if (d.requestId !== undefined && settle(d.requestId, "reject", err)) return;
      showError(err);
    } else if (msg.type === "system" && msg.action === "connected") {
      clientId = msg.data.clientId;
      retryMs = 500;
      setStatus("connected", "connected as " + clientId.slice(0, 8));
      restore();
    } else if (msg.type === "chat" && msg.action === "message") {
      const d = msg.data || {};
      if (d.room !== joinedRoom) return;
      addLine(d.clientId === clientId ? "message mine" : "message", d.text,
        d.nickname + " · " + new Date(d.at || Date.now()).toLocaleTimeString());
    } else if (msg.type === "chat" && msg.action === "members") {
      const d = msg.data || {};
      if (d.room === joinedRoom) renderMembers(d.members);
    }
  }

  function connect() {
    setStatus("connecting", "connecting…");
    ws = new WebSocket(wsUrl);
    ws.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      if (msg && typeof msg === "object") onMessage(msg);
    };
    ws.onclose = (event) => {
      if (joinedRoom) addLine("system", "Connection lost; reconnecting…");
      joinedRoom = null;
      failAllPending("connection closed");
      renderMembers([]);
      const delay = Math.round(retryMs * (0.75 + Math.random() / 2)); // jitter: tabs don't stampede
      setStatus("closed", "disconnected (" + event.code + "), retrying in " + (delay / 1000).toFixed(1) + " s…");
      setTimeout(connect, delay);
      retryMs = Math.min(retryMs * 2, 15000);
    };
  }

  connect();
})();
