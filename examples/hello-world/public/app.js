// examples/hello-world/public/app.js: a plain WebSocket client for the wire protocol:
// {type, action, data, requestId} out; replies carry "response" and the same requestId.
(function () {
  const statusEl = document.getElementById("status");
  const feed = document.getElementById("feed");
  const form = document.getElementById("greet");
  const sendBtn = document.getElementById("send");
  const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  let ws = null;
  let nextRequestId = 1;
  let retryMs = 500;

  function setStatus(state, text) {
    statusEl.className = "status " + state;
    statusEl.dataset.state = state;
    statusEl.textContent = text;
    sendBtn.disabled = state !== "connected";
  }

  function addToFeed(kind, text, meta) {
    const li = document.createElement("li");
    li.className = kind;
    const body = document.createElement("div");
    body.textContent = text;
    li.appendChild(body);
    if (meta) {
      const m = document.createElement("div");
      m.className = "meta";
      m.textContent = meta;
      li.appendChild(m);
    }
    feed.insertBefore(li, feed.firstChild);
    while (feed.children.length > 100) feed.removeChild(feed.lastChild);
  }

  function connect() {
    setStatus("connecting", "connecting…");
    ws = new WebSocket(wsUrl);
    ws.onopen = () => { retryMs = 500; };
    ws.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch (e) { return; }
      if (msg.type === "system" && msg.action === "connected") {
        setStatus("connected", "connected as " + msg.data.clientId.slice(0, 8));
        addToFeed("system", "Connected.", "clientId " + msg.data.clientId);
      } else if (msg.type === "hello" && msg.action === "greeting") {
        const d = msg.data || {};
        addToFeed("greeting", d.name + ": " + d.message, new Date((d.at || 0) * 1000).toLocaleTimeString());
      } else if (msg.type === "error") {
        addToFeed("error", "Error: " + msg.data.error, msg.data.code || "");
      }
    };
    ws.onclose = (event) => {
      setStatus("closed", "disconnected (" + event.code + "), retrying…");
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const name = document.getElementById("name").value;
    const messageInput = document.getElementById("message");
    ws.send(JSON.stringify({
      type: "hello", action: "greet", requestId: nextRequestId++,
      data: { name: name, message: messageInput.value },
    }));
    messageInput.value = "";
    messageInput.focus();
  });

  connect();
})();
