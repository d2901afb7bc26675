// bun_peer.js: Bun's own WebSocket server (Bun.serve, uWebSockets inside) as the raw-echo and publish baseline for tests/bench/run.sh.
//
//   bun tests/bench/bun_peer.js [--host 127.0.0.1] [--port 18082] [--path /ws] [--broadcast] [--deflate]
//
// Default (echo): every message goes back unchanged, in a frame of the same kind (ws.send of
// what arrived): no JSON, no `connected` frame, as moonwire's raw mode (tests/bench/raw_app)
// and `ws_peer.js --raw`. mw_loadgen's echo scenario matches the echoed request by its
// requestId and reads data.p.
//
// --broadcast: the way Bun apps fan out: every connection subscribes to one topic on open; a
// {"type":"bench","action":"broadcast","data":D} message is parsed and published once to the
// topic as {"type":"bench","action":"tick","data":D} (server.publish: the sender gets it
// too, as with moonwire's sendMessageToAll), and the sender gets the bare
// {"type":"bench","action":"broadcast"} ack that moonwire and ws_peer.js send.
//
// --deflate: perMessageDeflate: true (Bun's compression for clients that offer permessage-deflate;
// a publish is compressed once for the topic), for tests/bench/compression.sh.
//
// GET /health answers {"status":"ok","workerId":0,"connections":N}.

const MAX_MESSAGE = 65536; // moonwire's limits.maxMessageSize default
const SEND_QUEUE_BYTES = 1048576; // moonwire's limits.sendQueueBytes default (closes past it)
const TOPIC = 'bench';

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 18082, path: '/ws', broadcast: false, deflate: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      console.log('usage: bun bun_peer.js [--host H] [--port P] [--path /ws] [--broadcast] [--deflate]');
      process.exit(0);
    } else if (a === '--host') opts.host = argv[++i];
    else if (a === '--port') opts.port = Number(argv[++i]);
    else if (a === '--path') opts.path = argv[++i];
    else if (a === '--broadcast') opts.broadcast = true;
    else if (a === '--deflate') opts.deflate = true;
    else {
      console.error(`bun_peer: unknown argument ${a}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(opts.port) || opts.port <= 0 || opts.port > 65535) {
    console.error('bun_peer: --port must be 1..65535');
    process.exit(2);
  }
  return opts;
}

if (typeof Bun === 'undefined') {
  console.error('bun_peer: run this with bun (it measures Bun.serve), not node');
  process.exit(2);
}

const opts = parseArgs(process.argv.slice(2));
let connections = 0;

const errorFrame = (text) => JSON.stringify({ type: 'error', action: 'message', data: { error: text } });
const BROADCAST_ACK = JSON.stringify({ type: 'bench', action: 'broadcast' });

// Raw echo: the message handler does nothing but send back what arrived.
function echoMessage(ws, message) {
  ws.send(message);
}

function broadcastMessage(ws, message) {
  if (typeof message !== 'string') {
    ws.close(1003, 'binary frames are not supported');
    return;
  }
  let msg;
  try {
    msg = JSON.parse(message);
  } catch {
    ws.send(errorFrame('Failed to parse JSON'));
    return;
  }
  if (msg === null || typeof msg !== 'object' || msg.type !== 'bench' || msg.action !== 'broadcast') {
    ws.send(errorFrame('Unknown route'));
    return;
  }
  // Encoded once; uWebSockets frames it once per topic and queues it for every subscriber.
  server.publish(TOPIC, JSON.stringify({ type: 'bench', action: 'tick', data: msg.data }));
  ws.send(BROADCAST_ACK);
}

const server = Bun.serve({
  hostname: opts.host,
  port: opts.port,
  fetch(req, srv) {
    const url = new URL(req.url);
    if (url.pathname === '/health' && req.method === 'GET') {
      return Response.json({ status: 'ok', workerId: 0, connections });
    }
    if (url.pathname === opts.path) {
      if (srv.upgrade(req)) return undefined;
      return new Response('Upgrade Required', { status: 426 });
    }
    return new Response(null, { status: 404 });
  },
  websocket: {
    maxPayloadLength: MAX_MESSAGE,
    backpressureLimit: SEND_QUEUE_BYTES,
    closeOnBackpressureLimit: true, // as moonwire and ws_peer.js close a slow consumer
    perMessageDeflate: opts.deflate,
    idleTimeout: 960, // the largest Bun allows: broadcast receivers never send
    sendPings: false,
    message: opts.broadcast ? broadcastMessage : echoMessage,
    open(ws) {
      connections++;
      if (opts.broadcast) ws.subscribe(TOPIC);
    },
    close() {
      connections--;
    },
  },
});

console.log(`bun_peer: Bun ${Bun.version} listening on ws://${opts.host}:${server.port}${opts.path}` +
  ` (${opts.broadcast ? 'broadcast: subscribe + server.publish' : 'raw echo'}` +
  `${opts.deflate ? ', perMessageDeflate' : ''})`);

function shutdown() {
  server.stop(true);
  setTimeout(() => process.exit(0), 200);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
