'use strict';
// Node `ws` client for Weir's integration tests.
// Usage: node client.js URL SIZES   (SIZES: comma-separated byte counts)
// For every size sends a text and a binary message, waits for the echo and compares
// every byte and the message type; then closes with 1000. Prints one JSON line
// {"ok":bool,"checked":N,"close_code":C,"extensions":E,"error":...} and exits 0 only if all matched.
// WEIR_PMD=1 offers permessage-deflate (every message compressed); E is what was agreed.
const WebSocket = require('ws');
const crypto = require('crypto');

const [url, sizesArg] = process.argv.slice(2);
const sizes = (sizesArg || '0').split(',').map(Number);
const result = { ok: false, checked: 0, close_code: null, extensions: '', error: null };
const finish = (code) => {
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
};
const fail = (msg) => {
  result.error = msg;
  finish(1);
};
setTimeout(() => fail('timeout'), 90000).unref();

const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?-_';
const randomText = (size) => {
  const raw = crypto.randomBytes(size);
  let s = '';
  for (let i = 0; i < size; i++) s += alphabet[raw[i] % alphabet.length];
  return s;
};

const pmd = process.env.WEIR_PMD === '1' ? { threshold: 0 } : false;
const ws = new WebSocket(url, { maxPayload: 256 * 1024 * 1024, perMessageDeflate: pmd });
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
ws.on('error', (err) => fail('error: ' + err.message));
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
  result.extensions = ws.extensions;
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
