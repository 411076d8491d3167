// txgate dashboard: polls GET /v1/stats once a second while the tab is visible, appending only
// the intervals it has not seen yet (?since=<lastSeq>), and draws them with uPlot. Plain script,
// no build step; every URL is relative, so the page also works behind a path prefix.
(() => {
  'use strict';

  const KEY_STORAGE = 'txgate.dashboard.apiKey';
  const POLL_MS = 1000;
  const KEEP_POINTS = 600;
  const SERIES = ['committed', 'aborted', 'outcomeUnknown', 'requests', 'httpRequests', 'httpErrors', 'requestsPerTransaction', 'p50Ms', 'p99Ms', 'waiting', 'busy', 'idempotencyKeys'];

  const $ = (id) => document.getElementById(id);
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  // The key lives in this tab only (sessionStorage): never in a cookie, a URL or localStorage.
  let apiKey = sessionStorage.getItem(KEY_STORAGE);
  let startedAt = null;
  let lastSeq = 0;
  let data = emptyData();
  let charts = null;
  let timer = null;
  let polling = false;
  let stopped = false;

  function emptyData() {
    const d = { t: [] };
    for (const name of SERIES) d[name] = [];
    return d;
  }

  // ------------------------------------------------------------------ formatting
  const grouped = new Intl.NumberFormat('en-US');
  function int(n) {
    return n === null || n === undefined ? '–' : grouped.format(Math.round(n));
  }
  function rate(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return '–';
    return n < 10 ? n.toFixed(1) : grouped.format(Math.round(n));
  }
  function ms(n, unit = true) {
    if (n === null || n === undefined) return '–';
    if (n >= 1000) return (n / 1000).toFixed(n >= 10000 ? 0 : 1).replace(/\.0$/, '') + (unit ? ' s' : '');
    const text = n >= 100 ? String(Math.round(n)) : n >= 10 ? n.toFixed(1).replace(/\.0$/, '') : n.toFixed(2).replace(/\.?0+$/, '');
    return text + (unit ? ' ms' : '');
  }
  function ago(since, now) {
    const s = Math.max(0, (now - since) / 1000);
    if (s < 1) return (s * 1000).toFixed(0) + ' ms';
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }
  function setNumber(id, value, text) {
    const el = $(id);
    el.textContent = text;
    // The raw figure, for tests and tools reading the page.
    el.dataset.value = value === null || value === undefined ? '' : String(value);
  }

  // ------------------------------------------------------------------ charts
  function chartHeight() {
    return matchMedia('(max-width: 480px)').matches ? 180 : 220;
  }

  function makeChart(el, series, extra) {
    const muted = css('--muted');
    const grid = { stroke: css('--line'), width: 1 };
    const axis = { stroke: muted, grid, ticks: grid };
    const opts = {
      width: Math.max(200, el.clientWidth),
      height: chartHeight(),
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] }, ...(extra.scales || {}) },
      axes: [{ ...axis }, { ...axis, size: 52, ...(extra.y || {}) }, ...(extra.axes || []).map((a) => ({ ...axis, ...a, grid: { show: false } }))],
      series: [{}, ...series.map((s) => ({ width: 1.5, spanGaps: false, ...s, stroke: css(s.color), points: { show: false } }))],
    };
    const u = new uPlot(opts, [[], ...series.map(() => [])], el);
    new ResizeObserver(() => {
      const width = Math.max(200, el.clientWidth);
      if (width !== u.width || chartHeight() !== u.height) u.setSize({ width, height: chartHeight() });
    }).observe(el);
    return u;
  }

  function createCharts() {
    const perSecond = (u, v) => (v === null || v === undefined ? '–' : rate(v) + '/s');
    return {
      tx: makeChart($('chart-tx'), [
        { label: 'committed', color: '--committed', value: perSecond },
        { label: 'aborted', color: '--aborted', value: perSecond },
        { label: 'outcome unknown', color: '--unknown', value: perSecond },
      ], {}),
      req: makeChart($('chart-req'), [
        { label: 'requests committed', color: '--requests', value: perSecond },
        { label: 'error answers', color: '--unknown', value: perSecond },
        { label: 'requests per transaction', color: '--ratio', scale: 'ratio', value: (u, v) => (v === null ? '–' : v.toFixed(1)) },
      ], {
        scales: { ratio: { range: (u, min, max) => [0, Math.max(2, max * 1.1)] } },
        axes: [{ scale: 'ratio', side: 1, size: 40 }],
      }),
      latency: makeChart($('chart-latency'), [
        { label: 'p50', color: '--p50', value: (u, v) => ms(v) },
        { label: 'p99', color: '--p99', value: (u, v) => ms(v) },
      ], {
        scales: { y: { distr: 3, log: 10 } },
        // Log ticks labelled as durations ("10 ms", "1 s"), not bare numbers.
        y: { size: 62, values: (u, splits) => splits.map((v) => (v === null || v === undefined ? '' : ms(v))) },
      }),
      waiting: makeChart($('chart-waiting'), [
        { label: 'requests waiting', color: '--requests', value: (u, v) => int(v) },
        { label: 'producers busy', color: '--committed', value: (u, v) => int(v), paths: uPlot.paths.stepped({ align: 1 }) },
      ], {}),
    };
  }

  function drawCharts() {
    if (!charts) charts = createCharts();
    const x = data.t.map((t) => t / 1000);
    charts.tx.setData([x, data.committed, data.aborted, data.outcomeUnknown]);
    charts.req.setData([x, data.requests, data.httpErrors, data.requestsPerTransaction]);
    charts.latency.setData([x, data.p50Ms, data.p99Ms]);
    charts.waiting.setData([x, data.waiting, data.busy]);
  }

  // ------------------------------------------------------------------ the figures
  function lastAverage(name, n) {
    const values = data[name].slice(-n).filter((v) => v !== null);
    return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
  }

  function render(s) {
    const txRate = lastAverage('committed', 10);
    const reqRate = lastAverage('requests', 10);
    setNumber('tx-rate', txRate, rate(txRate));
    setNumber('req-rate', reqRate, rate(reqRate));
    const ratio = txRate ? reqRate / txRate : null;
    setNumber('req-per-tx', ratio, ratio === null ? '–' : ratio.toFixed(2));
    // "75.6 / 428 ms": one unit for both when they share it, so the pair fits a phone's tile.
    const sameUnit = s.latency.p50Ms !== null && (s.latency.p50Ms < 1000) === (s.latency.p99Ms < 1000);
    setNumber('latency-p50', s.latency.p50Ms, ms(s.latency.p50Ms, !sameUnit));
    setNumber('latency-p99', s.latency.p99Ms, ms(s.latency.p99Ms));
    $('latency-note').textContent = 'POST /v1/transactions, last ' + Math.round(s.latency.windowSeconds / 60) + ' min (' + int(s.latency.count) + ')';
    setNumber('waiting', s.service.pendingRequests, int(s.service.pendingRequests));
    $('waiting-note').textContent = 'accepted, not yet answered; ' + int(s.service.openBatches) + ' batches waiting for a producer';
    setNumber('keys', s.service.idempotencyKeys, int(s.service.idempotencyKeys));

    const t = s.totals;
    setNumber('total-committed', t.committed, int(t.committed));
    setNumber('total-aborted', t.aborted, int(t.aborted));
    setNumber('total-unknown', t.outcomeUnknown, int(t.outcomeUnknown));
    setNumber('total-requests', t.requests, int(t.requests));
    setNumber('total-http', t.httpRequests, int(t.httpRequests));
    setNumber('total-http-errors', t.httpErrors, int(t.httpErrors));
    setNumber('total-replacements', t.replacements, int(t.replacements));

    renderPool(s);
    renderErrors(s);
    drawCharts();
  }

  function renderPool(s) {
    const list = $('slots');
    if (!s.pool) {
      $('pool-summary').textContent = 'not available';
      list.replaceChildren();
      return;
    }
    const p = s.pool;
    $('pool-summary').textContent =
      p.size + ' producers: ' + p.idle + ' idle, ' + p.busy + ' busy, ' + p.replacing + ' replacing; ' + p.waiting + ' batches waiting (at most ' + p.maxWaiting + ')' + (p.closed ? '; closed' : '');
    const items = p.slots.map((slot) => {
      const li = document.createElement('li');
      li.dataset.state = slot.state;
      const head = document.createElement('span');
      const state = document.createElement('span');
      state.className = 'state';
      state.textContent = '#' + slot.slot + ' ' + slot.state;
      head.append(state, ' ', ago(slot.stateSince, s.now));
      const id = document.createElement('span');
      id.className = 'id';
      id.textContent = slot.transactionalId;
      id.title = slot.transactionalId;
      const meta = document.createElement('span');
      meta.className = 'meta';
      meta.textContent = int(slot.transactions) + ' transactions' + (slot.replacements ? ', replaced ' + slot.replacements + '×' : '');
      li.append(head, id, meta);
      return li;
    });
    list.replaceChildren(...items);
  }

  function renderErrors(s) {
    const rows = s.errors.map((e) => {
      const tr = document.createElement('tr');
      const code = document.createElement('td');
      const link = document.createElement('a');
      link.href = e.type.replace(/^\//, '');
      link.textContent = e.code;
      code.append(link);
      const cells = [String(e.status), int(e.count), ago(e.lastAt, s.now) + ' ago', e.method + ' ' + e.route].map((text) => {
        const td = document.createElement('td');
        td.textContent = text;
        return td;
      });
      tr.append(code, ...cells);
      return tr;
    });
    $('errors').replaceChildren(...rows);
    $('no-errors').hidden = rows.length > 0;
  }

  // ------------------------------------------------------------------ polling
  function setStatus(state, text) {
    const el = $('status');
    el.dataset.state = state;
    el.textContent = text;
  }

  function append(s) {
    if (s.startedAt !== startedAt) {
      // The first answer, or a new gateway process (its intervals start again from 1, so an
      // answer to ?since= of the old one lists too few: the next poll asks for all of them).
      const restarted = startedAt !== null;
      startedAt = restarted ? null : s.startedAt;
      data = emptyData();
      lastSeq = 0;
      if (restarted) return;
    } else if (data.t.length > 0 && s.series.firstSeq > lastSeq + 1 && s.series.t.length > 0) {
      // Intervals missed while the tab was hidden: a gap in the lines, not a straight line across.
      data.t.push(s.series.t[0] - 1);
      for (const name of SERIES) data[name].push(null);
    }
    data.t.push(...s.series.t);
    for (const name of SERIES) data[name].push(...s.series[name]);
    const extra = data.t.length - KEEP_POINTS;
    if (extra > 0) for (const key of Object.keys(data)) data[key].splice(0, extra);
    lastSeq = s.series.lastSeq;
  }

  function schedule() {
    clearTimeout(timer);
    if (!stopped && !document.hidden) timer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    if (polling || stopped) return;
    polling = true;
    try {
      const url = 'v1/stats' + (startedAt === null ? '' : '?since=' + lastSeq);
      let res;
      try {
        res = await fetch(url, { headers: apiKey ? { authorization: 'Bearer ' + apiKey } : {}, cache: 'no-store', credentials: 'omit' });
      } catch {
        setStatus('error', 'gateway unreachable, retrying');
        return;
      }
      if (res.status === 401) {
        askForKey(apiKey ? 'That key was not accepted.' : '');
        return;
      }
      const body = await res.json().catch(() => null);
      if (!res.ok || !body) {
        // A problem document: starting, draining, or something worth reading.
        setStatus('error', (body && body.detail) || 'HTTP ' + res.status);
        return;
      }
      append(body);
      $('login').hidden = true;
      $('main').hidden = false;
      $('forget').hidden = !apiKey;
      render(body);
      setStatus('live', 'live');
      $('updated').textContent = 'v' + body.version + ', updated ' + new Date(body.now).toLocaleTimeString();
      document.body.dataset.lastSeq = String(lastSeq);
    } finally {
      polling = false;
      schedule();
    }
  }

  function askForKey(message) {
    stopped = true;
    apiKey = null;
    sessionStorage.removeItem(KEY_STORAGE);
    // Nothing of a previous key's view stays on the page.
    startedAt = null;
    data = emptyData();
    if (charts) drawCharts();
    $('slots').replaceChildren();
    $('errors').replaceChildren();
    $('main').hidden = true;
    $('forget').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message;
    setStatus('paused', 'API key needed');
    $('key').focus();
  }

  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const value = $('key').value.trim();
    if (value === '') return;
    apiKey = value;
    sessionStorage.setItem(KEY_STORAGE, value);
    $('key').value = '';
    $('login-error').textContent = '';
    stopped = false;
    setStatus('connecting', 'connecting…');
    void poll();
  });

  $('forget').addEventListener('click', () => askForKey(''));

  // A hidden tab does not poll: nobody watching costs the gateway nothing.
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      clearTimeout(timer);
      if (!stopped) setStatus('paused', 'paused (tab hidden)');
    } else if (!stopped) {
      void poll();
    }
  });

  void poll();
})();
