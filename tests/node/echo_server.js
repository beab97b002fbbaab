'use strict';
// Node `ws` echo backend for Weir's integration tests.
// Prints JSON lines: {"event":"listening","port":N}, then "open"/"closed" per connection.
const { WebSocketServer } = require('ws');

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: 0,
  maxPayload: 256 * 1024 * 1024,
  perMessageDeflate: false,
});
let n = 0;
wss.on('listening', () => emit({ event: 'listening', port: wss.address().port }));
wss.on('connection', (ws, req) => {
  const conn = ++n;
  emit({ event: 'open', conn, path: req.url, headers: req.headers });
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('close', (code, reason) => emit({ event: 'closed', conn, code, reason: reason.toString() }));
  ws.on('error', (err) => emit({ event: 'error', conn, message: String(err && err.message) }));
});
process.on('SIGTERM', () => process.exit(0));
