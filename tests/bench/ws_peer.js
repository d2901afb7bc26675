// ws_peer.js: Node's `ws` baseline for tests/bench/run.sh: the moonwire bench protocol, or raw echo with --raw.
//
// Default: the bench protocol of tests/bench/app on Node's `ws` package, measured with the same
// load generator as moonwire.
//
//   node tests/bench/ws_peer.js [--host 127.0.0.1] [--port 18081] [--path /ws] [--raw]
//
// Same wire shapes as moonwire: `connected` on open, {"type","action","response","requestId"}
// replies, error frames, broadcast encoded once and sent to every open client, /health.
// --raw: raw echo instead, as moonwire's raw mode and bun_peer.js: every message goes back
// unchanged in a frame of the same kind; no JSON, no `connected` frame.
'use strict';

const http = require('http');
const crypto = require('crypto');
const { WebSocketServer, WebSocket } = require('ws');

const MAX_MESSAGE = 65536;            // moonwire's limits.maxMessageSize default
const SEND_QUEUE_BYTES = 1048576;     // moonwire's limits.sendQueueBytes default (4503 past it)

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 18081, path: '/ws', raw: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      console.log('usage: node ws_peer.js [--host H] [--port P] [--path /ws] [--raw]');
      process.exit(0);
    } else if (a === '--host') opts.host = argv[++i];
    else if (a === '--port') opts.port = Number(argv[++i]);
    else if (a === '--path') opts.path = argv[++i];
    else if (a === '--raw') opts.raw = true;
    else {
      console.error(`ws_peer: unknown argument ${a}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port <= 0 || opts.port > 65535) {
    console.error('ws_peer: --port must be 1..65535');
    process.exit(2);
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const clients = new Set();

function errorFrame(text, extra) {
  return JSON.stringify({ type: 'error', action: 'message', data: { error: text, ...extra } });
}

function reply(ws, type, action, response, requestId) {
  const msg = { type, action };
  if (response !== undefined && response !== null) msg.response = response;
  if (requestId !== undefined) msg.requestId = requestId;
  ws.send(JSON.stringify(msg));
}

// The bench controller, as in tests/bench/app/controllers/bench.lua.
const bench = {
  echo(ws, data) {
    return data;
  },
  broadcast(ws, data) {
    // Encoded once; ws frames the same Buffer for every recipient.
    const frame = Buffer.from(JSON.stringify({ type: 'bench', action: 'tick', data }));
    for (const c of clients) {
      if (c.readyState !== WebSocket.OPEN) continue;
      if (c.bufferedAmount > SEND_QUEUE_BYTES) {
        c.close(4503, 'slow consumer');
        continue;
      }
      c.send(frame, { binary: false });
    }
    return undefined;
  },
};

function onMessage(ws, raw, isBinary) {
  if (isBinary) {
    ws.close(1003, 'binary frames are not supported');
    return;
  }
  let msg;
  try {
    msg = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    ws.send(errorFrame('Failed to parse JSON'));
    return;
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    ws.send(errorFrame('Invalid WebSocket message'));
    return;
  }
  const { type, action, data, requestId } = msg;
  if (typeof type !== 'string') return ws.send(errorFrame('Missing WebSocket message type'));
  if (typeof action !== 'string') return ws.send(errorFrame('Missing WebSocket message action'));
  const handler = type === 'bench' && Object.hasOwn(bench, action) ? bench[action] : null;
  if (handler === null) {
    ws.send(errorFrame('Unknown route', { code: 'not_found', type, action, requestId }));
    return;
  }
  let result;
  try {
    result = handler(ws, data);
  } catch (e) {
    ws.send(errorFrame('Internal error', { code: 'internal', type, action, requestId }));
    return;
  }
  reply(ws, type, action, result, requestId);
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/health') {
    const body = JSON.stringify({ status: 'ok', workerId: 0, connections: clients.size });
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.length });
    res.end(body);
    return;
  }
  res.writeHead(404, { 'Content-Length': 0 });
  res.end();
});

const wss = new WebSocketServer({
  server,
  path: opts.path,
  maxPayload: MAX_MESSAGE,
  perMessageDeflate: false,
  clientTracking: false,
});

wss.on('connection', (ws) => {
  clients.add(ws);
  ws.on('close', () => clients.delete(ws));
  ws.on('error', () => clients.delete(ws));
  if (opts.raw) {
    ws.on('message', (raw, isBinary) => ws.send(raw, { binary: isBinary }));
    return;
  }
  const clientId = crypto.randomBytes(16).toString('base64url');
  ws.send(JSON.stringify({ type: 'system', action: 'connected', data: { clientId } }));
  ws.on('message', (raw, isBinary) => onMessage(ws, raw, isBinary));
});

server.on('error', (e) => {
  console.error(`ws_peer: ${e.message}`);
  process.exit(1);
});

server.listen({ host: opts.host, port: opts.port, backlog: 4096 }, () => {
  console.log(`ws_peer: listening on ws://${opts.host}:${opts.port}${opts.path}` +
    (opts.raw ? ' (raw echo)' : ''));
});

function shutdown() {
  for (const c of clients) c.close(1001, 'server shutting down');
  server.close();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
