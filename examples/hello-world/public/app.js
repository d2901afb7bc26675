// examples/hello-world/public/app.js: the hello-world page, on the browser client that every
// moonwire server serves at /moonwire.js (it reconnects by itself and matches replies to
// requests). Greetings are pushed to everyone as {"type":"hello","action":"greeting"}.
import { connect } from "/moonwire.js";

const statusEl = document.getElementById("status");
const feed = document.getElementById("feed");
const form = document.getElementById("greet");
const sendBtn = document.getElementById("send");

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

const client = connect(); // ws(s)://this host/ws

// A clientId starts with its worker's tag (the same for every tab on that worker): the end
// is the random part that tells tabs apart.
const shortId = (id) => id.slice(-8);

client.onStateChange((state, info) => {
  if (state === "open") setStatus("connected", "connected as " + shortId(info.clientId));
  else if (state === "reconnecting") {
    setStatus("closed", "disconnected (" + (info.code || "no connection") + "), retrying in " +
      (info.delay / 1000).toFixed(1) + " s…");
  } else if (state === "connecting") setStatus("connecting", "connecting…");
});

client.on("system", "connected", (data) => addToFeed("system", "Connected.", "clientId " + data.clientId));

client.on("hello", "greeting", (d) => {
  addToFeed("greeting", d.name + ": " + d.message, new Date((d.at || 0) * 1000).toLocaleTimeString());
});

client.on("error", "message", (d) => addToFeed("error", "Error: " + d.error, d.code || ""));

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = document.getElementById("name").value;
  const messageInput = document.getElementById("message");
  const message = messageInput.value;
  messageInput.value = "";
  messageInput.focus();
  try {
    await client.request("hello", "greet", { name: name, message: message });
  } catch (err) {
    messageInput.value = messageInput.value || message; // keep what was typed, to send again
    addToFeed("error", "Error: " + err.message, err.code || "");
  }
});
