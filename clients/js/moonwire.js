// clients/js/moonwire.js: the browser client for moonwire's wire protocol (docs/reference.md),
// served by every moonwire server at GET /moonwire.js. A dependency-free ES module, so a page
// needs no build step:
//
//   import { connect } from "/moonwire.js";
//   const client = connect();                          // ws(s)://<this page's host>/ws
//   client.on("chat", "message", (data) => show(data));
//   const reply = await client.request("chat", "send", { text: "hi" });   // the reply's `response`
//
// It matches replies to requests by requestId, queues messages while disconnected, reconnects
// with jittered exponential backoff, joins its rooms again after a reconnect (in rooms with
// history, asking for the messages it missed: each arrives once, in order), and asks
// getToken() for a fresh token before every connect (so an expired token, close 4401, is
// replaced instead of retried) and when the server says the token expires soon (auth/expiring:
// it is refreshed on the open connection, no reconnect).

/**
 * @typedef {object} ConnectOptions
 * @property {string} [token] a JWT sent as `?token=` on every connect (use getToken for tokens that expire)
 * @property {() => (string|null|undefined|Promise<string|null|undefined>)} [getToken]
 *   called before each connect and reconnect; its token is sent as `?token=` (none when it
 *   returns null or undefined). When it throws or rejects, the attempt counts as failed and is
 *   retried with backoff. Takes precedence over `token`.
 * @property {number} [requestTimeout=10000] ms before request() rejects with code "timeout"
 * @property {number} [minDelay=500] first reconnect delay in ms; doubled after each failed attempt
 * @property {number} [maxDelay=5000] cap of the reconnect delay in ms (each delay is jittered to 50-100 %)
 * @property {boolean} [reconnect=true] false: stay closed once the connection drops
 * @property {number} [maxQueued=1000] messages kept while disconnected; past it send() returns
 *   false and request() rejects with code "queue_full"
 */

/**
 * "connecting": opening a WebSocket; "open": the server sent `connected`, messages flow;
 * "reconnecting": waiting `info.delay` ms before the next attempt; "closed": close() was called,
 * or the connection dropped with reconnect off (or with 4401 and no getToken to renew the token).
 * @typedef {"connecting"|"open"|"reconnecting"|"closed"} State
 */

/**
 * @typedef {object} StateInfo
 * @property {string} [clientId] with "open"
 * @property {number} [code] the close code that ended the previous connection (1006: no connection)
 * @property {string} [reason] the close reason
 * @property {number} [delay] with "reconnecting": ms until the next attempt
 * @property {number} [attempt] with "connecting"/"reconnecting": failed attempts in a row so far
 * @property {Error} [error] with "reconnecting": getToken() failed or the URL was refused
 */

/**
 * The Error a request() rejects with. `code` is the server's (an error frame's `code`, e.g.
 * "invalid", "not_found", "internal") or the client's own: "timeout" (no reply in time),
 * "disconnected" (the connection dropped after the request was sent: it may or may not have
 * run), "closed" (close() was called), "queue_full", "refused" (joinRoom or presence got
 * success:false).
 * `data` is the error frame's data, when there was one.
 * @typedef {Error & {code?: string, data?: object}} MoonwireError
 */

const DEFAULTS = { requestTimeout: 10000, minDelay: 500, maxDelay: 5000, reconnect: true, maxQueued: 1000 };
const TOKEN_EXPIRED = 4401;

/** @returns {MoonwireError} */
function failure(message, code, data) {
  const err = new Error(message);
  err.code = code;
  if (data !== undefined) err.data = data;
  return err;
}

// Without a URL: this page's origin + "/ws". A relative or http(s) URL becomes ws(s).
function resolveUrl(url) {
  const base = typeof location !== "undefined" ? location.href : undefined;
  const u = new URL(url || "/ws", base);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  return u.href;
}

// A throwing listener must not stop the others (nor the client): report it like an uncaught error.
function safely(fn, ...args) {
  try {
    fn(...args);
  } catch (err) {
    (globalThis.reportError || console.error)(err);
  }
}

/**
 * Opens a connection (and keeps it open) to a moonwire server.
 * @param {string|ConnectOptions} [url] ws://, wss://, http(s):// or a path such as "/ws";
 *   default: this page's origin + "/ws". May be left out: connect({ getToken }).
 * @param {ConnectOptions} [options]
 * @returns {MoonwireClient}
 */
export function connect(url, options) {
  if (url && typeof url === "object") return new MoonwireClient(undefined, url);
  return new MoonwireClient(url, options);
}

export class MoonwireClient {
  #options;
  #ws = null;
  #state = "connecting";
  #clientId = null;
  #nextRequestId = 1;
  #pending = new Map();   // requestId -> {resolve, reject, timer, sent}
  #queue = [];            // {text, requestId?, joins?} waiting for the connection, in call order
  #rooms = new Map();     // joined (or being joined) room -> {onRejoin, offset, epoch}: joined again after every reconnect
  #handlers = new Map();  // "type\naction" -> Set of listeners
  #stateListeners = new Set();
  #attempt = 0;           // failed attempts in a row: the backoff exponent
  #retryTimer = null;
  #openedAt = 0;
  #expiredBefore = false; // the last connection also ended with 4401, soon after it opened

  /**
   * Use connect() instead.
   * @param {string} [url]
   * @param {ConnectOptions} [options]
   */
  constructor(url, options) {
    /** The WebSocket URL, without the token. */
    this.url = resolveUrl(url);
    this.#options = { ...DEFAULTS };
    for (const [key, value] of Object.entries(options || {})) if (value !== undefined) this.#options[key] = value;
    // Connect after the caller's synchronous code, so listeners it adds right after connect()
    // see the first "connecting" (and messages it sends are queued, not lost).
    queueMicrotask(() => { if (this.#state === "connecting") this.#open(); });
  }

  /** @returns {State} */
  get state() { return this.#state; }

  /** The clientId of the current connection (null while not open). */
  get clientId() { return this.#clientId; }

  /** The rooms this client is in, or will join again when it reconnects. */
  get rooms() { return [...this.#rooms.keys()]; }

  /**
   * Sends {type, action, data, requestId} and resolves with the reply's `response` (undefined
   * when the controller returned nothing). Called while disconnected, the request waits for the
   * connection (its timeout runs meanwhile).
   * @param {string} type
   * @param {string} action
   * @param {*} [data]
   * @param {{timeout?: number}} [options] timeout in ms (default: the requestTimeout option)
   * @returns {Promise<any>} rejects with a MoonwireError
   */
  request(type, action, data, options) {
    return this.#call(type, action, data, options && options.timeout, undefined);
  }

  /**
   * Sends {type, action, data} without a requestId: no reply is awaited (a reply the server
   * still sends is ignored; an error frame reaches on("error", "message")). Queued while
   * disconnected.
   * @param {string} type
   * @param {string} action
   * @param {*} [data]
   * @returns {boolean} false when the client is closed or the queue is full (nothing was sent)
   */
  send(type, action, data) {
    if (this.#state === "closed") return false;
    const frame = { type, action };
    if (data !== undefined) frame.data = data;
    return this.#deliver({ text: JSON.stringify(frame) });
  }

  /**
   * Calls fn(data, message) for each message the server pushes with this type and action
   * ("*" matches any), e.g. on("chat", "message", ...), on("system", "connected", ...) (data:
   * {clientId}, after every (re)connect), on("error", "message", ...) (error frames that answer
   * no request). Replies to request() go to its promise, not here.
   * @param {string} type
   * @param {string} action
   * @param {(data: any, message: object) => void} fn
   * @returns {() => void} unsubscribes
   */
  on(type, action, fn) {
    const key = type + "\n" + action;
    let set = this.#handlers.get(key);
    if (!set) this.#handlers.set(key, (set = new Set()));
    const listener = (data, message) => fn(data, message); // the same fn may be added twice
    set.add(listener);
    return () => set.delete(listener);
  }

  /**
   * Calls fn(state, info) on every state change: "connecting", "open" (info.clientId),
   * "reconnecting" (info.code, info.delay), "closed".
   * @param {(state: State, info: StateInfo) => void} fn
   * @returns {() => void} unsubscribes
   */
  onStateChange(fn) {
    const listener = (state, info) => fn(state, info);
    this.#stateListeners.add(listener);
    return () => this.#stateListeners.delete(listener);
  }

  /**
   * Joins a room through the built-in system controller and remembers it, so it is joined
   * again after every reconnect. Resolves with the server's reply
   * ({success: true, message, data: {roomName, joinedAt}}; in a room with history data also
   * has `offset` and `epoch`); rejects with code "refused" (and forgets the room) when the
   * server answers success:false. When the connection drops before the reply the promise
   * rejects with "disconnected", but the room stays remembered and is joined on reconnect.
   *
   * In a room with history the client remembers the offset of the last message it got and, on
   * reconnect, rejoins with `since`: the server first sends what was missed (once, in order),
   * then the reply. `options.onRejoin(info)` is called after each rejoin with
   * `{recovered, history, response}`: recovered is true when nothing was lost; false (in a
   * history room) means the gap could not be filled (history expired or trimmed, server
   * restarted): reload the room's state from your own API. A rejoin the server refuses (the
   * room's canJoin says no now) forgets the room and calls onRejoin with `{refused: true,
   * error, recovered: false}`.
   * @param {string} room
   * @param {{onRejoin?: (info: {recovered: boolean, history: boolean, response: any, refused?: boolean, error?: string}) => void}} [options]
   * @returns {Promise<any>}
   */
  async joinRoom(room, options) {
    const known = this.#rooms.get(room);
    const entry = { onRejoin: options && options.onRejoin, offset: known ? known.offset : undefined,
                    epoch: known ? known.epoch : undefined };
    this.#rooms.set(room, entry);
    try {
      const response = await this.#call("system", "joinRoom", { roomName: room }, undefined, room);
      if (!response || response.success !== true) {
        throw failure((response && response.error) || "could not join " + room, "refused", response);
      }
      this.#position(entry, response.data);
      return response;
    } catch (err) {
      if (err.code !== "disconnected") this.#rooms.delete(room);
      throw err;
    }
  }

  /**
   * Leaves a room (system/leaveRoom) and forgets it. Resolves with the server's reply; also
   * when that is {success: false, error: "Not in room"} (the client is out of the room either way).
   * @param {string} room
   * @returns {Promise<any>}
   */
  leaveRoom(room) {
    this.#rooms.delete(room);
    return this.#call("system", "leaveRoom", { roomName: room }, undefined, undefined);
  }

  /**
   * Who is in a room whose server options say `presence = true` (system/presence; the page must
   * be a member). Resolves with {roomName, count, users, clients: [{clientId, userId, joinedAt}]}
   * (userId absent for an anonymous client; at most 1000 clients, oldest first, with
   * `truncated: true` when there are more); rejects with code "refused" when the server answers
   * success:false ("Not in room", "Presence is not enabled for this room").
   * @param {string} room
   * @returns {Promise<{roomName: string, count: number, users: number, clients: {clientId: string, userId?: string|number, joinedAt: string}[], truncated?: boolean}>}
   */
  async presence(room) {
    const response = await this.#call("system", "presence", { roomName: room }, undefined, undefined);
    if (!response || response.success !== true) {
      throw failure((response && response.error) || "no presence for " + room, "refused", response);
    }
    return response.data;
  }

  /**
   * Calls fn(action, data) for every presence event of a room whose server options say
   * `joinLeave = true` (room "*": any room): action "join" or "leave", data {roomName, clientId,
   * userId} (userId absent when anonymous). The same as on("presence", "*", ...) filtered by room.
   * After a reconnect, call presence(room) again: events sent while disconnected are not replayed.
   * @param {string} room
   * @param {(action: "join"|"leave", data: {roomName: string, clientId: string, userId?: string|number}) => void} fn
   * @returns {() => void} unsubscribes
   */
  onPresence(room, fn) {
    return this.on("presence", "*", (data, message) => {
      if (data && (room === "*" || data.roomName === room)) fn(message.action, data);
    });
  }

  /**
   * Closes the connection for good: no more reconnects; waiting requests reject with "closed".
   * @param {number} [code=1000] 1000 or 3000-4999
   * @param {string} [reason]
   */
  close(code = 1000, reason = "") {
    const ws = this.#ws;
    this.#ws = null; // its close event is not ours any more
    if (ws) safely(() => ws.close(code, reason));
    this.#stop({ code, reason });
  }

  // ---- requests ---------------------------------------------------------------------------

  #call(type, action, data, timeout, joins) {
    return new Promise((resolve, reject) => {
      if (this.#state === "closed") {
        reject(failure("the client is closed", "closed"));
        return;
      }
      const requestId = this.#nextRequestId++;
      const frame = { type, action, requestId };
      if (data !== undefined) frame.data = data;
      const text = JSON.stringify(frame); // throws (rejects) here for data JSON cannot hold
      const ms = timeout === undefined ? this.#options.requestTimeout : timeout;
      const timer = setTimeout(() => this.#settle(requestId, undefined,
        failure(`no reply to ${type}/${action} within ${ms} ms`, "timeout")), ms);
      this.#pending.set(requestId, { resolve, reject, timer, sent: false });
      if (!this.#deliver({ text, requestId, joins })) {
        this.#settle(requestId, undefined, failure("too many messages wait for the connection", "queue_full"));
      }
    });
  }

  // Sends now when open, else queues. False when the queue is full.
  #deliver(item) {
    if (this.#state === "open" && this.#ws) {
      this.#transmit(item);
      return true;
    }
    if (this.#queue.length >= this.#options.maxQueued) return false;
    this.#queue.push(item);
    return true;
  }

  #transmit(item) {
    this.#ws.send(item.text);
    const p = item.requestId !== undefined && this.#pending.get(item.requestId);
    if (p) p.sent = true;
  }

  // Resolves (error undefined) or rejects a request once; a late reply finds nothing.
  #settle(requestId, value, error) {
    const p = this.#pending.get(requestId);
    if (!p) return false;
    this.#pending.delete(requestId);
    clearTimeout(p.timer);
    if (!p.sent) this.#queue = this.#queue.filter((item) => item.requestId !== requestId);
    if (error) p.reject(error);
    else p.resolve(value);
    return true;
  }

  // ---- the connection ---------------------------------------------------------------------

  async #open() {
    this.#setState("connecting", { attempt: this.#attempt });
    let ws;
    try {
      const token = this.#options.getToken ? await this.#options.getToken() : this.#options.token;
      if (this.#state === "closed") return; // close() while getToken() was running
      let url = this.url;
      if (token) {
        const u = new URL(url);
        u.searchParams.set("token", token);
        url = u.href;
      }
      ws = new WebSocket(url);
    } catch (error) {
      if (this.#state !== "closed") this.#retry({ error });
      return;
    }
    this.#ws = ws;
    ws.onmessage = (event) => { if (this.#ws === ws) this.#receive(event.data); };
    ws.onclose = (event) => { if (this.#ws === ws) this.#dropped(event.code, event.reason); };
  }

  #receive(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "error") {
      const d = msg.data || {};
      // "Unknown route" alone does not say which of the page's calls was mistyped
      const where = d.code === "not_found" && d.type !== undefined && d.action !== undefined
        ? ": " + d.type + "/" + d.action : "";
      const err = failure((d.error || "error") + where, d.code, d);
      if (d.requestId !== undefined && this.#settle(d.requestId, undefined, err)) return;
    } else if (typeof msg.room === "string" && typeof msg.offset === "number") {
      // a message of a room with history: remember how far this client got
      const entry = this.#rooms.get(msg.room);
      if (entry && entry.epoch !== undefined) entry.offset = msg.offset;
    } else if (msg.requestId !== undefined || "response" in msg) {
      // A reply: to its request (a late one, or one to send(), is dropped), never to on().
      if (msg.requestId !== undefined) this.#settle(msg.requestId, msg.response, undefined);
      return;
    }
    if (msg.type === "system" && msg.action === "connected") this.#ready(msg.data || {});
    if (msg.type === "auth" && msg.action === "expiring") this.#refreshToken();
    this.#emit(msg);
  }

  // The server sent `connected`: rejoin the rooms, then send what was queued. The server
  // handles one client's messages in arrival order, so queued messages run after the rejoins.
  #ready(data) {
    this.#clientId = data.clientId || null;
    this.#openedAt = Date.now();
    this.#state = "open";
    const queued = this.#queue;
    this.#queue = [];
    const joinQueued = new Set(queued.filter((item) => item.joins !== undefined).map((item) => item.joins));
    for (const room of this.#rooms.keys()) if (!joinQueued.has(room)) this.#rejoin(room);
    for (const item of queued) this.#transmit(item);
    this.#setState("open", { clientId: this.#clientId });
  }

  // Where a history room's messages stand after a joinRoom reply (data: {offset, epoch}).
  #position(entry, data) {
    if (data && typeof data.epoch === "string" && typeof data.offset === "number") {
      entry.epoch = data.epoch;
      entry.offset = data.offset;
    }
  }

  // The server says the token expires soon (auth/expiring): ask getToken() for a new one and
  // hand it over with auth/refresh, so the connection is never closed with 4401 while the
  // token source works. Without getToken, or when it fails, the old token runs out and the
  // reconnect asks getToken() again (or stays closed without it).
  async #refreshToken() {
    if (!this.#options.getToken) return;
    try {
      const token = await this.#options.getToken();
      if (!token || this.#state !== "open") return;
      await this.request("auth", "refresh", { token });
    } catch (err) {
      console.warn("moonwire: token refresh failed:", err && err.message);
    }
  }

  async #rejoin(room) {
    const entry = this.#rooms.get(room);
    const data = { roomName: room };
    if (entry && entry.epoch !== undefined && entry.offset !== undefined) {
      data.since = { offset: entry.offset, epoch: entry.epoch };
    }
    try {
      const response = await this.#call("system", "joinRoom", data, undefined, room);
      if (!response || response.success !== true) {
        // e.g. the room's canJoin refuses now: the page hears it through onRejoin
        this.#rooms.delete(room);
        console.warn("moonwire: could not rejoin room " + room + ":", response && response.error);
        if (entry && entry.onRejoin) {
          safely(entry.onRejoin, { recovered: false, history: false, refused: true,
                                   error: response && response.error, response });
        }
        return;
      }
      if (entry) {
        this.#position(entry, response.data);
        const d = response.data || {};
        if (entry.onRejoin) {
          safely(entry.onRejoin, { recovered: d.recovered === true, history: typeof d.epoch === "string", response });
        }
      }
    } catch (err) {
      if (err.code === "disconnected" || err.code === "closed") return; // tried again next time
      this.#rooms.delete(room);
      console.warn("moonwire: could not rejoin room " + room + ":", err.message);
    }
  }

  #dropped(code, reason) {
    this.#ws = null;
    this.#clientId = null;
    // Requests already sent get no reply now: the server forgot this connection.
    for (const [requestId, p] of [...this.#pending]) {
      if (p.sent) this.#settle(requestId, undefined, failure("the connection closed before the reply", "disconnected"));
    }
    // Start the backoff over after a connection that stayed up, and after a first 4401 (a
    // fresh token should do); tokens that keep expiring at once back off like failures.
    const stayedUp = this.#openedAt && Date.now() - this.#openedAt >= this.#options.maxDelay;
    if (stayedUp || (code === TOKEN_EXPIRED && !this.#expiredBefore)) this.#attempt = 0;
    this.#expiredBefore = code === TOKEN_EXPIRED && !stayedUp;
    this.#openedAt = 0;
    if (!this.#options.reconnect || (code === TOKEN_EXPIRED && !this.#options.getToken)) {
      this.#stop({ code, reason }); // an expired fixed token would only be refused again
      return;
    }
    this.#retry({ code, reason });
  }

  #stop(info) {
    if (this.#state === "closed") return;
    clearTimeout(this.#retryTimer);
    this.#clientId = null;
    this.#state = "closed";
    for (const requestId of [...this.#pending.keys()]) {
      this.#settle(requestId, undefined, failure("the client was closed", "closed"));
    }
    this.#queue = [];
    this.#setState("closed", info);
  }

  #retry(info) {
    const o = this.#options;
    const base = Math.min(o.maxDelay, o.minDelay * 2 ** Math.min(this.#attempt, 30));
    const delay = Math.round(base * (0.5 + Math.random() / 2)); // jitter: clients don't return all at once
    this.#attempt++;
    this.#state = "reconnecting";
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (this.#state === "reconnecting") this.#open();
    }, delay);
    this.#setState("reconnecting", { ...info, delay, attempt: this.#attempt });
  }

  #setState(state, info) {
    this.#state = state;
    for (const listener of [...this.#stateListeners]) safely(listener, state, info);
  }

  #emit(msg) {
    const { type, action } = msg;
    for (const key of [type + "\n" + action, type + "\n*", "*\n" + action, "*\n*"]) {
      const set = this.#handlers.get(key);
      if (set) for (const listener of [...set]) safely(listener, msg.data, msg);
    }
  }
}
