'use strict';
// Node `ws` client over wss:// for Weir's TLS integration tests.
// Usage: node tls_client.js URL SIZES CA_PEM [SERVERNAME [CERT_PEM KEY_PEM]]
//   SIZES: comma-separated byte counts; CA_PEM: the only CA trusted (the test CA);
//   SERVERNAME: SNI and the name the certificate is checked against ('' = from the URL);
//   CERT_PEM/KEY_PEM: a client certificate to present.
// For every size sends a text and a binary message, waits for the echo and compares
// every byte and the message type; then closes with 1000. Prints one JSON line
// {"ok":bool,"checked":N,"close_code":C,"tls":version,"peer_cn":CN,"error":...}
// and exits 0 only if all matched.
const WebSocket = require('ws');
const crypto = require('crypto');
const fs = require('fs');

const [url, sizesArg, caPath, servername, certPath, keyPath] = process.argv.slice(2);
const sizes = (sizesArg || '0').split(',').map(Number);
const result = { ok: false, checked: 0, close_code: null, tls: null, peer_cn: null, error: null };
const finish = (code) => {
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
};
const fail = (msg) => {
  result.error = msg;
  finish(1);
};
setTimeout(() => fail('timeout'), 60000).unref();

const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_';
const randomText = (size) => {
  const raw = crypto.randomBytes(size);
  let s = '';
  for (let i = 0; i < size; i++) s += alphabet[raw[i] % alphabet.length];
  return s;
};

const opts = {
  maxPayload: 256 * 1024 * 1024,
  perMessageDeflate: false,
  ca: fs.readFileSync(caPath),
  rejectUnauthorized: true,
};
if (servername) opts.servername = servername;
if (certPath) {
  opts.cert = fs.readFileSync(certPath);
  opts.key = fs.readFileSync(keyPath);
}
const ws = new WebSocket(url, opts);
const queue = [];
const waiters = [];
ws.on('message', (data, isBinary) => {
  const item = { data, isBinary };
  if (waiters.length) waiters.shift()(item);
  else queue.push(item);
});
const next = () => new Promise((resolve) => {
  if (queue.length) resolve(queue.shift());
  else waiters.push(resolve);
});
ws.on('error', (err) => fail('error: ' + (err.code ? err.code + ': ' : '') + err.message));
ws.on('upgrade', (res) => {
  const sock = res.socket;
  if (sock && typeof sock.getProtocol === 'function') {
    result.tls = sock.getProtocol();
    const peer = sock.getPeerCertificate();
    result.peer_cn = peer && peer.subject ? peer.subject.CN : null;
  }
});
ws.on('close', (code) => {
  result.close_code = code;
  if (result.error === null && result.checked === sizes.length * 2 && code === 1000) {
    result.ok = true;
    finish(0);
  } else {
    if (result.error === null) result.error = 'closed early or badly: ' + code;
    finish(1);
  }
});
ws.on('open', async () => {
  for (const size of sizes) {
    for (const binary of [false, true]) {
      const payload = binary ? crypto.randomBytes(size) : Buffer.from(randomText(size), 'utf8');
      ws.send(binary ? payload : payload.toString('utf8'), { binary });
      const got = await next();
      if (got.isBinary !== binary) return fail(`size ${size}: type mismatch (binary=${binary})`);
      if (Buffer.compare(Buffer.from(got.data), payload) !== 0)
        return fail(`size ${size} binary=${binary}: content mismatch (got ${got.data.length} bytes)`);
      result.checked++;
    }
  }
  ws.close(1000, 'done');
});
