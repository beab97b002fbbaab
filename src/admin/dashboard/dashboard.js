// Weir admin dashboard: polls /admin/stats and /admin/connections, shows rates computed
// from counter deltas, 5-minute charts drawn on <canvas>, and lets the user close a
// connection. Plain browser JavaScript, no dependencies. Never puts server data into
// innerHTML: everything goes through textContent.
//
// Page URL options: ?interval=<ms> (poll period, default 1000), #token=<admin token>
// (kept in sessionStorage and removed from the address bar).

(function () {
  'use strict';

  const params = new URLSearchParams(location.search);
  const INTERVAL_MS = clamp(parseInt(params.get('interval'), 10) || 1000, 100, 60000);
  const FETCH_TIMEOUT_MS = Math.max(5000, 2 * INTERVAL_MS);
  const WINDOW_MS = 5 * 60 * 1000;
  const CONN_LIMIT = 200;
  const TOKEN_KEY = 'weir-admin-token';
  const CLOSE_REASON = 'closed from dashboard';

  const CLOSE_CODE_NAMES = {
    1000: 'normal closure', 1001: 'going away', 1002: 'protocol error',
    1003: 'unsupported data', 1005: 'no status', 1006: 'abnormal closure',
    1007: 'invalid payload', 1008: 'policy violation', 1009: 'message too big',
    1010: 'extension required', 1011: 'internal error', 1012: 'service restart',
    1013: 'try again later', 1014: 'bad gateway', 1015: 'TLS handshake failure',
  };

  // ------------------------------------------------------------------ state

  let token = takeToken();
  let updates = 0;
  let timer = null;
  let inFlight = false;
  let authBlocked = false;
  let prev = null;              // previous successful sample: {t, stats}
  const samples = [];           // {t, active, mC2u, mU2c, bC2u, bU2c} over the last WINDOW_MS
  const rows = new Map();       // connection id -> {tr, cells, btn}
  let noticeTimer = null;

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------------ helpers

  function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, v)); }

  function takeToken() {
    const t = tokenFromHash();
    if (t !== null) return t;
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  // #token=... in the address: remembered for this tab, then taken off the address bar
  function tokenFromHash() {
    const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
    if (m) {
      let t = m[1];
      try { t = decodeURIComponent(t); } catch (e) { /* keep it raw */ }
      try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* storage off */ }
      // keep the token out of the address bar, history and screenshots
      dropHashFromAddressBar();
      return t;
    }
    return null;
  }

  function onHashChange() {
    const t = tokenFromHash();
    if (t === null) return;
    token = t;
    $('token-form').hidden = true;
    hideError();
    authBlocked = false;
    refresh();
  }

  function dropHashFromAddressBar() {
    try { window.history.replaceState(null, '', location.pathname + location.search); } catch (e) { /* ignore */ }
  }

  class AuthError extends Error {}
  class HttpError extends Error {
    constructor(path, status, body) {
      super(`${path}: HTTP ${status}${body ? ' ' + body.slice(0, 200) : ''}`);
      this.status = status;
    }
  }

  async function api(path, opts) {
    opts = opts || {};
    const headers = Object.assign({}, opts.headers || {});
    if (token) headers['Authorization'] = 'Bearer ' + token;
    const ctl = new AbortController();
    const to = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    let res;
    try {
      res = await fetch(path, Object.assign({ cache: 'no-store', credentials: 'omit' }, opts,
                                            { headers, signal: ctl.signal }));
    } catch (e) {
      throw new Error(e && e.name === 'AbortError' ? `${path}: no answer within ${FETCH_TIMEOUT_MS} ms`
                                                    : `${path}: ${e && e.message ? e.message : e}`);
    } finally {
      clearTimeout(to);
    }
    if (res.status === 401) throw new AuthError(`${path}: 401 unauthorized`);
    return res;
  }

  async function getJSON(path) {
    const res = await api(path);
    if (!res.ok) throw new HttpError(path, res.status, await res.text().catch(() => ''));
    try {
      return await res.json();
    } catch (e) {
      throw new Error(`${path}: the answer is not JSON`);
    }
  }

  function num(v) { return typeof v === 'number' && isFinite(v) ? v : 0; }

  function rate(cur, old, dt) {
    if (old === undefined || old === null || !(dt > 0)) return null;
    cur = num(cur); old = num(old);
    if (cur < old) return null;           // counter went back: a restart, no rate this time
    return (cur - old) / dt;
  }

  function fmtRate(v) { return v === null || v === undefined ? '–' : v.toFixed(1); }

  function fmtInt(v) { return Math.round(num(v)).toLocaleString('en-US'); }

  const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  function fmtBytes(v) {
    v = num(v);
    let i = 0;
    while (Math.abs(v) >= 1024 && i < BYTE_UNITS.length - 1) { v /= 1024; i++; }
    return i === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${BYTE_UNITS[i]}`;
  }

  function fmtByteRate(v) {
    if (v === null || v === undefined) return '–';
    let i = 0;
    while (Math.abs(v) >= 1024 && i < BYTE_UNITS.length - 1) { v /= 1024; i++; }
    return `${v.toFixed(1)} ${BYTE_UNITS[i]}/s`;
  }

  function fmtDuration(s) {
    s = num(s);
    if (s < 60) return `${s.toFixed(1)} s`;
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    const sec = Math.floor(s) % 60;
    const p2 = (n) => String(n).padStart(2, '0');
    if (d > 0) return `${d}d ${p2(h)}h ${p2(m)}m`;
    if (h > 0) return `${h}h ${p2(m)}m ${p2(sec)}s`;
    return `${m}m ${p2(sec)}s`;
  }

  function setText(id, text) {
    const el = $(id);
    if (el && el.textContent !== text) el.textContent = text;
  }

  function setRate(id, v, bytes) {
    const el = $(id);
    if (!el) return;
    el.textContent = bytes ? fmtByteRate(v) : fmtRate(v);
    el.dataset.value = v === null || v === undefined ? '' : v.toFixed(1);
  }

  function td(text, cls) {
    const c = document.createElement('td');
    if (cls) c.className = cls;
    c.textContent = text;
    return c;
  }

  function emptyRow(tbody, cols, text) {
    const tr = document.createElement('tr');
    tr.className = 'empty';
    const c = td(text);
    c.colSpan = cols;
    tr.appendChild(c);
    tbody.appendChild(tr);
  }

  function showError(text) {
    const b = $('error-banner');
    b.textContent = text;
    b.hidden = false;
    document.body.classList.add('stale');
  }

  function hideError() {
    $('error-banner').hidden = true;
    document.body.classList.remove('stale');
  }

  function notice(text, isError) {
    const n = $('notice');
    n.textContent = text;
    n.className = 'banner ' + (isError ? 'banner-error' : 'banner-notice');
    n.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { n.hidden = true; }, 6000);
  }

  // ------------------------------------------------------------------ polling

  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(refresh, Math.max(0, delay));
  }

  async function refresh() {
    if (inFlight || authBlocked) return;
    inFlight = true;
    clearTimeout(timer);
    const started = performance.now();
    try {
      const statsP = getJSON('/admin/stats').then((s) => ({ s, t: performance.now() }));
      const connsP = getJSON(`/admin/connections?limit=${CONN_LIMIT}`);
      const [{ s: stats, t }, conns] = await Promise.all([statsP, connsP]);
      render(stats, conns, t);
      updates += 1;
      document.body.dataset.updates = String(updates);
      setText('last-update', new Date().toLocaleTimeString());
      hideError();
    } catch (e) {
      if (e instanceof AuthError) {
        askToken();
      } else {
        showError(`Cannot refresh: ${e && e.message ? e.message : e} (retrying every ${INTERVAL_MS} ms)`);
      }
    } finally {
      inFlight = false;
      if (!authBlocked) schedule(INTERVAL_MS - (performance.now() - started));
    }
  }

  function askToken() {
    authBlocked = true;
    clearTimeout(timer);
    const form = $('token-form');
    form.hidden = false;
    showError(token ? 'Unauthorized (401): the admin token was refused.'
                    : 'Unauthorized (401): this admin listener needs a token.');
    $('token-input').focus();
  }

  function onTokenSubmit(ev) {
    ev.preventDefault();
    const t = $('token-input').value.trim();
    if (!t) return;
    token = t;
    try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* storage off */ }
    $('token-input').value = '';
    $('token-form').hidden = true;
    hideError();
    authBlocked = false;
    refresh();
  }

  // ------------------------------------------------------------------ rendering

  function render(stats, conns, t) {
    const c = stats.connections || {};
    const m = stats.messages || {};
    const b = stats.bytes || {};

    // a restart (uptime went back) starts the deltas over
    if (prev && num(stats.uptime_seconds) < num(prev.stats.uptime_seconds)) prev = null;
    const dt = prev ? (t - prev.t) / 1000 : 0;
    const p = prev ? prev.stats : null;
    const pc = p ? p.connections || {} : {};
    const pm = p ? p.messages || {} : {};
    const pb = p ? p.bytes || {} : {};

    const r = {
      connects: p ? rate(c.accepted_total, pc.accepted_total, dt) : null,
      mC2u: p ? rate(m.client_to_upstream, pm.client_to_upstream, dt) : null,
      mU2c: p ? rate(m.upstream_to_client, pm.upstream_to_client, dt) : null,
      bC2u: p ? rate(b.client_to_upstream, pb.client_to_upstream, dt) : null,
      bU2c: p ? rate(b.upstream_to_client, pb.upstream_to_client, dt) : null,
    };

    // header
    setText('version', String(stats.version || '?'));
    setText('uptime', fmtDuration(stats.uptime_seconds));
    setText('generation', String(stats.generation === undefined ? '?' : stats.generation));
    setText('workers', String(stats.workers === undefined ? '?' : stats.workers));
    const dr = $('draining');
    dr.textContent = stats.draining ? 'draining' : 'serving';
    dr.className = 'badge ' + (stats.draining ? 'draining' : 'serving');

    // tiles
    setText('active-connections', fmtInt(c.active));
    setText('open-connections', fmtInt(c.open));
    setText('accepted-total', fmtInt(c.accepted_total));
    setRate('connects-rate', r.connects, false);
    setRate('msgs-rate-c2u', r.mC2u, false);
    setRate('msgs-rate-u2c', r.mU2c, false);
    setRate('bytes-rate-c2u', r.bC2u, true);
    setRate('bytes-rate-u2c', r.bU2c, true);
    setText('msgs-total-c2u', fmtInt(m.client_to_upstream));
    setText('msgs-total-u2c', fmtInt(m.upstream_to_client));
    setText('bytes-total-c2u', fmtBytes(b.client_to_upstream));
    setText('bytes-total-u2c', fmtBytes(b.upstream_to_client));

    // samples and charts
    const now = Date.now();
    samples.push({ t: now, active: num(c.active), mC2u: r.mC2u, mU2c: r.mU2c, bC2u: r.bC2u, bU2c: r.bU2c });
    while (samples.length && samples[0].t < now - WINDOW_MS) samples.shift();
    drawCharts();

    renderRoutes(stats.routes || [], p ? p.routes || [] : null, dt);
    renderCloseCodes(stats.close_codes || {});
    renderRejections(stats.handshakes || {});
    renderConnections(conns || {});

    prev = { t, stats };
  }

  function renderRoutes(routes, prevRoutes, dt) {
    const tbody = $('routes-table').tBodies[0];
    const old = new Map();
    if (prevRoutes) for (const r of prevRoutes) old.set(r.name, r);
    tbody.textContent = '';
    if (!routes.length) { emptyRow(tbody, 7, 'no routes'); return; }
    for (const r of routes) {
      const o = old.get(r.name);
      const m = r.messages || {}, b = r.bytes || {};
      const om = o ? o.messages || {} : {}, ob = o ? o.bytes || {} : {};
      const tr = document.createElement('tr');
      tr.dataset.route = String(r.name);
      tr.appendChild(td(String(r.name)));
      tr.appendChild(td(fmtInt(r.active), 'num'));
      tr.appendChild(td(fmtRate(o ? rate(m.client_to_upstream, om.client_to_upstream, dt) : null), 'num'));
      tr.appendChild(td(fmtRate(o ? rate(m.upstream_to_client, om.upstream_to_client, dt) : null), 'num'));
      tr.appendChild(td(fmtByteRate(o ? rate(b.client_to_upstream, ob.client_to_upstream, dt) : null), 'num'));
      tr.appendChild(td(fmtByteRate(o ? rate(b.upstream_to_client, ob.upstream_to_client, dt) : null), 'num'));
      const cell = document.createElement('td');
      const ul = document.createElement('ul');
      ul.className = 'upstreams';
      for (const u of r.upstreams || []) {
        const li = document.createElement('li');
        const dot = document.createElement('span');
        dot.className = 'dot ' + (u.healthy ? 'up' : 'down');
        li.appendChild(dot);
        const addr = document.createElement('span');
        addr.className = 'addr';
        addr.textContent = String(u.address);
        li.appendChild(addr);
        const state = document.createElement('span');
        state.className = u.healthy ? '' : 'state-down';
        state.textContent = u.healthy ? ' healthy' : ' unhealthy';
        li.appendChild(state);
        const more = document.createElement('span');
        more.className = 'muted';
        more.textContent = ` · ${fmtInt(u.active)} active · ${fmtInt(u.connect_failures_total)} connect failures`;
        li.appendChild(more);
        ul.appendChild(li);
      }
      if (!ul.childNodes.length) ul.textContent = '–';
      cell.appendChild(ul);
      tr.appendChild(cell);
      tbody.appendChild(tr);
    }
  }

  function renderCloseCodes(codes) {
    const tbody = $('close-codes').tBodies[0];
    tbody.textContent = '';
    const keys = Object.keys(codes).sort((a, b) => Number(a) - Number(b));
    if (!keys.length) { emptyRow(tbody, 3, 'no Close frames yet'); return; }
    for (const k of keys) {
      const tr = document.createElement('tr');
      tr.dataset.code = k;
      tr.appendChild(td(k, 'num mono'));
      const n = Number(k);
      tr.appendChild(td(CLOSE_CODE_NAMES[n] || (n >= 4000 ? 'application' : n >= 3000 ? 'registered' : ''), 'muted'));
      tr.appendChild(td(fmtInt(codes[k]), 'num'));
      tbody.appendChild(tr);
    }
  }

  function renderRejections(h) {
    setText('handshakes-upgraded', fmtInt(h.upgraded_total));
    setText('handshakes-failed', fmtInt(h.failed_total));
    const by = h.failed_by_reason || {};
    const tbody = $('rejections').tBodies[0];
    tbody.textContent = '';
    const keys = Object.keys(by).sort((a, b) => num(by[b]) - num(by[a]) || a.localeCompare(b));
    if (!keys.length) { emptyRow(tbody, 2, 'no rejected handshakes'); return; }
    for (const k of keys) {
      const tr = document.createElement('tr');
      tr.dataset.reason = k;
      tr.appendChild(td(k, 'mono'));
      tr.appendChild(td(fmtInt(by[k]), 'num'));
      tbody.appendChild(tr);
    }
  }

  // Rows are kept and updated in place (not rebuilt) so that a Close button does not
  // vanish under the pointer between mousedown and mouseup.
  const CONN_FIELDS = [
    ['id', 'num mono', (x) => String(x.id)],
    ['client', 'mono', (x) => String(x.client || '')],
    ['route', '', (x) => String(x.route || '')],
    ['upstream', 'mono', (x) => String(x.upstream || '–')],
    ['age', 'num', (x) => fmtDuration(x.age_seconds)],
    ['bytes_in', 'num', (x) => fmtBytes(x.bytes_in)],
    ['bytes_out', 'num', (x) => fmtBytes(x.bytes_out)],
    ['messages_in', 'num', (x) => fmtInt(x.messages_in)],
    ['messages_out', 'num', (x) => fmtInt(x.messages_out)],
    ['user', '', (x) => (x.user === null || x.user === undefined ? '–' : String(x.user))],
  ];

  function renderConnections(data) {
    const list = Array.isArray(data.connections) ? data.connections.slice() : [];
    list.sort((a, b) => num(a.id) - num(b.id));
    const tbody = $('connections-table').tBodies[0];
    const seen = new Set();
    for (const x of tbody.querySelectorAll('tr.empty')) x.remove();
    let before = tbody.firstChild;
    for (const x of list) {
      const id = String(x.id);
      seen.add(id);
      let row = rows.get(id);
      if (!row) row = makeRow(id);
      CONN_FIELDS.forEach(([, , f], i) => {
        const text = f(x);
        if (row.cells[i].textContent !== text) row.cells[i].textContent = text;
      });
      if (x.state && x.state !== 'relay') row.tr.title = `state: ${x.state}`;
      else row.tr.removeAttribute('title');
      if (row.tr !== before) tbody.insertBefore(row.tr, before);
      before = row.tr.nextSibling;
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    if (!list.length) emptyRow(tbody, CONN_FIELDS.length + 1, 'no live connections');
    const total = num(data.total);
    setText('connections-count', total > list.length ? `(${list.length} of ${fmtInt(total)} shown)`
                                                      : `(${fmtInt(total || list.length)})`);
  }

  function makeRow(id) {
    const tr = document.createElement('tr');
    tr.dataset.id = id;
    const cells = CONN_FIELDS.map(([name, cls]) => {
      const c = td('', cls);
      c.dataset.field = name;
      tr.appendChild(c);
      return c;
    });
    const last = document.createElement('td');
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'close-btn';
    btn.textContent = 'Close';
    btn.title = `Send a Close to connection ${id}`;
    last.appendChild(btn);
    tr.appendChild(last);
    const row = { tr, cells, btn };
    rows.set(id, row);
    return row;
  }

  function readCloseCode() {
    const raw = $('close-code').value.trim();
    if (raw === '') return 1000;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1000 || n > 4999) return null;
    return n;
  }

  async function closeConnection(id, row) {
    const code = readCloseCode();
    if (code === null) {
      notice('The close code must be a whole number from 1000 to 4999.', true);
      return;
    }
    row.btn.disabled = true;
    row.btn.textContent = 'Closing…';
    row.tr.classList.add('closing');
    const undo = () => {
      row.btn.disabled = false;
      row.btn.textContent = 'Close';
      row.tr.classList.remove('closing');
    };
    try {
      const res = await api(`/admin/connections/${encodeURIComponent(id)}/close`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ code, reason: CLOSE_REASON }),
      });
      if (res.status === 202 || res.ok) {
        notice(`Connection ${id}: Close ${code} sent.`);
      } else if (res.status === 404) {
        notice(`Connection ${id} is already gone.`);
      } else {
        const body = await res.text().catch(() => '');
        undo();
        notice(`Closing connection ${id} failed: HTTP ${res.status} ${body.slice(0, 200)}`, true);
      }
    } catch (e) {
      undo();
      if (e instanceof AuthError) askToken();
      else notice(`Closing connection ${id} failed: ${e && e.message ? e.message : e}`, true);
    }
    if (!inFlight && !authBlocked) schedule(Math.min(200, INTERVAL_MS));
  }

  function onConnectionsClick(ev) {
    const btn = ev.target.closest('button.close-btn');
    if (!btn || btn.disabled) return;
    const tr = btn.closest('tr');
    const id = tr && tr.dataset.id;
    const row = id && rows.get(id);
    if (row) closeConnection(id, row);
  }

  // ------------------------------------------------------------------ charts

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  // A "nice" grid step (1, 2, 2.5 or 5 times a power of ten; of 1024 for bytes) that
  // splits [0, max] into at most 4 parts.
  function niceStep(max, opts) {
    let unit = 1;
    if (opts.bytes) {
      while (max / unit >= 1024 && unit < Math.pow(1024, 4)) unit *= 1024;
    }
    const raw = max / unit / 4;
    const e = Math.pow(10, Math.floor(Math.log10(raw)));
    const factors = opts.integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
    let step = 10 * e;
    for (const f of factors) if (f * e >= raw) { step = f * e; break; }
    if (opts.integer) step = Math.max(1, step);
    return step * unit;
  }

  function fmtAxisBytes(v) {
    if (v === 0) return '0';
    let i = 0;
    while (v >= 1024 && i < BYTE_UNITS.length - 1) { v /= 1024; i++; }
    return `${+v.toFixed(1)} ${BYTE_UNITS[i]}`;
  }

  function fmtAxisNum(v) {
    if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
    if (v >= 1e4) return `${+(v / 1e3).toFixed(1)}k`;
    return String(+v.toFixed(1));
  }

  // series: [{key, color}] over the samples; values null are gaps.
  function drawChart(canvas, series, opts) {
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);

    const text = cssVar('--text', '#1d2330');
    const muted = cssVar('--muted', '#6a7282');
    const line = cssVar('--line', '#dde1e7');
    ctx.font = '11px system-ui, sans-serif';

    const L = 58, R = 8, T = 8, B = 20;
    const pw = w - L - R, ph = h - T - B;
    const now = Date.now(), t0 = now - WINDOW_MS;

    let max = 0;
    for (const p of samples) for (const s of series) {
      const v = p[s.key];
      if (v !== null && v !== undefined && v > max) max = v;
    }
    if (!(max > 0)) max = opts.bytes ? 1024 : 1;
    const step = niceStep(max, opts);
    const ymax = Math.max(step, Math.ceil(max / step - 1e-9) * step);
    const fmt = opts.bytes ? fmtAxisBytes : fmtAxisNum;
    const x = (t) => L + ((t - t0) / WINDOW_MS) * pw;
    const y = (v) => T + ph - (v / ymax) * ph;

    // grid and y labels
    ctx.strokeStyle = line;
    ctx.lineWidth = 1;
    ctx.fillStyle = muted;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let i = 0; i * step <= ymax + 1e-9; i++) {
      const v = i * step;
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(L, yy);
      ctx.lineTo(L + pw, yy);
      ctx.stroke();
      ctx.fillText(fmt(v), L - 6, yy);
    }
    // x labels: one a minute
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (let mnt = 5; mnt >= 0; mnt--) {
      const xx = x(now - mnt * 60000);
      ctx.fillText(mnt === 0 ? 'now' : `-${mnt}m`, Math.min(Math.max(xx, L + 10), L + pw - 10), T + ph + 5);
    }

    const points = samples.length;
    if (points < 2) {
      ctx.fillStyle = muted;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText('collecting data…', L + pw / 2, T + ph / 2);
      return;
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(L, T - 1, pw, ph + 2);
    ctx.clip();
    ctx.lineWidth = 1.75;
    ctx.lineJoin = 'round';
    for (const s of series) {
      ctx.strokeStyle = s.color;
      ctx.beginPath();
      let pen = false;
      for (const p of samples) {
        const v = p[s.key];
        if (v === null || v === undefined) { pen = false; continue; }
        const xx = x(p.t), yy = y(v);
        if (pen) ctx.lineTo(xx, yy); else ctx.moveTo(xx, yy);
        pen = true;
      }
      ctx.stroke();
    }
    ctx.restore();

    // latest value, top left of the plot
    ctx.textAlign = 'left';
    ctx.textBaseline = 'top';
    let lx = L + 6;
    const last = samples[samples.length - 1];
    for (const s of series) {
      const v = last[s.key];
      if (v === null || v === undefined) continue;
      const label = opts.bytes ? fmtByteRate(v) : opts.integer ? String(v) : v.toFixed(1);
      ctx.fillStyle = series.length > 1 ? s.color : text;
      ctx.fillText(label, lx, T + 2);
      lx += ctx.measureText(label).width + 12;
    }
  }

  function drawCharts() {
    const a = cssVar('--series-a', '#1f5fbf');
    const b = cssVar('--series-b', '#d0641a');
    drawChart($('chart-connections'), [{ key: 'active', color: a }], { integer: true });
    drawChart($('chart-messages'), [{ key: 'mC2u', color: a }, { key: 'mU2c', color: b }], {});
    drawChart($('chart-bytes'), [{ key: 'bC2u', color: a }, { key: 'bU2c', color: b }], { bytes: true });
  }

  // ------------------------------------------------------------------ start

  function start() {
    document.body.dataset.updates = '0';
    document.body.dataset.interval = String(INTERVAL_MS);
    $('token-form').addEventListener('submit', onTokenSubmit);
    window.addEventListener('hashchange', onHashChange);
    $('connections-table').tBodies[0].addEventListener('click', onConnectionsClick);
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(drawCharts, 100);
    });
    drawCharts();
    refresh();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
