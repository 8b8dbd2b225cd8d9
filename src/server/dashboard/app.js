// The dashboard page: polls the Prometheus API and Tidemark's own endpoints
// (src/server/http-api.md) every 5 s and draws health, metric cards,
// charts, alerts, silences, events and the query explorer. An endpoint that
// answers 404 shows as "not available" in its panel; nothing else breaks.

import { adoptToken, call, query, queryRange, NotAvailable } from './api.js';
import { fromMatrix, formatValue, renderChart, renderSparkline, scaleLinear, PALETTE } from './charts.js';
import {
  RANGES, pickStep, rateWindow, parseHash, buildHash, silencesFor, silenceMatchers,
  labelFilterSelector, ago,
} from './util.js';

const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
const state = {
  range: localStorage.getItem('tidemark.range') || '1h',
  silences: [],
  alertRows: [],
  events: [], eventsNext: null, eventsPaged: false, eventKinds: new Set(),
  chartData: new Map(), // box id → [series, opts], redrawn on resize
  inflight: new Set(),
};

function h(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function note(id, text, cls = '') {
  const n = $(id);
  n.hidden = !text;
  n.textContent = text || '';
  n.className = `note ${cls}`;
}

function banner(text) {
  const b = $('banner');
  b.hidden = !text;
  b.textContent = text || '';
}

/**
 * [startMs, endMs, step seconds] of the picked range, ending now. Not
 * aligned to the step: the last point is always "now", which a
 * step-aligned grid would leave out for up to a step (a day at 1y).
 */
function window_() {
  const secs = RANGES.find(([l]) => l === state.range)[1];
  const end = Date.now();
  return [end - secs * 1000, end, pickStep(secs)];
}

/** Runs `fn` unless its previous run is still going (slow queries never pile up). */
async function once(key, fn) {
  if (state.inflight.has(key)) return;
  state.inflight.add(key);
  try { await fn(); } finally { state.inflight.delete(key); }
}

// ---- health ---------------------------------------------------------------

async function refreshHealth() {
  const list = $('components');
  const overall = $('overall');
  let data;
  try {
    data = await call('/api/v1/health');
  } catch (e) {
    overall.className = 'badge unknown';
    overall.dataset.status = 'unknown';
    overall.textContent = e instanceof NotAvailable ? 'health n/a' : 'health ?';
    list.replaceChildren(h('li', 'muted', e instanceof NotAvailable ? 'Component health is not available on this server.' : e.message));
    return;
  }
  overall.className = `badge ${data.status}`;
  overall.dataset.status = data.status;
  overall.textContent = data.status;
  const now = Date.now();
  list.replaceChildren(...(data.components || []).map((c) => {
    const li = h('li', `component ${c.status}`);
    li.dataset.status = c.status;
    li.append(h('span', 'dot'), h('span', 'name', c.name), h('span', 'status', c.status));
    if (c.reason) li.append(h('span', 'reason', c.reason));
    if (c.since) li.append(h('span', 'muted since', `since ${ago(Date.parse(c.since), now)}`));
    return li;
  }));
}

// ---- metric cards and charts ------------------------------------------------

const CARDS = [
  { id: 'error-rate', title: 'Error rate', unit: '%', expr: (w) => `sum(rate(recoveries_total{outcome="failure"}[${w}])) / sum(rate(recoveries_total[${w}]))` },
  { id: 'success-ratio', title: 'Recovery success', unit: '%', expr: (w) => `sum(rate(recoveries_total{outcome="success"}[${w}])) / sum(rate(recoveries_total[${w}]))` },
  { id: 'p50', title: 'p50 recovery time', unit: 's', expr: (w) => `histogram_quantile(0.5, sum by (le) (rate(recovery_duration_seconds_bucket[${w}])))` },
  { id: 'p99', title: 'p99 recovery time', unit: 's', expr: (w) => `histogram_quantile(0.99, sum by (le) (rate(recovery_duration_seconds_bucket[${w}])))` },
  { id: 'throughput', title: 'Recovery throughput', unit: '/s', expr: (w) => `sum(rate(recoveries_total[${w}]))` },
  { id: 'open-breakers', title: 'Open breakers', unit: '', expr: (w) => `count(max_over_time(circuit_breaker_state[${w}]) == 1) or vector(0)` },
];

const quantile = (q, w, by = '') => `histogram_quantile(${q}, sum by (le${by}) (rate(recovery_duration_seconds_bucket[${w}])))`;
const CHARTS = [
  { id: 'chart-error-rate', unit: '%', queries: (w) => [[`sum by (component) (rate(recoveries_total{outcome="failure"}[${w}])) / sum by (component) (rate(recoveries_total[${w}]))`]] },
  { id: 'chart-recovery', unit: 's', queries: (w) => [[quantile(0.5, w), 'p50'], [quantile(0.9, w), 'p90'], [quantile(0.99, w), 'p99']] },
  {
    id: 'chart-throughput',
    unit: '/s',
    queries: (w) => [
      [`sum(rate(tidemark_storage_samples_appended_total[${w}]))`, 'samples ingested'],
      [`sum(rate(recoveries_total[${w}]))`, 'recovery attempts'],
      [`sum(rate(errors_total[${w}]))`, 'errors'],
    ],
  },
  { id: 'chart-breakers', kind: 'state', queries: (w) => [[`max by (component) (max_over_time(circuit_breaker_state[${w}]))`]] },
];

function buildCards() {
  $('cards').replaceChildren(...CARDS.map((c) => {
    const card = h('div', 'card');
    card.id = `card-${c.id}`;
    const spark = h('div', 'spark');
    spark.dataset.points = '0';
    card.append(h('div', 'card-title', c.title), h('div', 'card-value', '–'), spark, h('div', 'card-foot muted', ''));
    return card;
  }));
}

async function refreshCards() {
  const [start, end, step] = window_();
  const w = rateWindow(step);
  await Promise.all(CARDS.map(async (c) => {
    const card = $(`card-${c.id}`);
    try {
      const data = await queryRange(c.expr(w), start, end, step);
      const pts = fromMatrix(data.result)[0]?.points ?? [];
      const last = [...pts].reverse().find((p) => Number.isFinite(p[1]));
      card.querySelector('.card-value').textContent = last ? formatValue(last[1], c.unit) : '–';
      card.querySelector('.card-foot').textContent = last ? `per ${w}, ${ago(last[0], Date.now())}` : 'no data';
      renderSparkline(card.querySelector('.spark'), pts, { start, end, step });
    } catch (e) {
      card.querySelector('.card-foot').textContent = e.message;
    }
  }));
}

async function refreshChart(c) {
  const [start, end, step] = window_();
  const w = rateWindow(step);
  const box = $(c.id);
  try {
    const parts = await Promise.all(c.queries(w).map(async ([q, name]) => {
      const data = await queryRange(q, start, end, step);
      const series = fromMatrix(data.result);
      if (name) series.forEach((s) => { s.name = name; });
      return series;
    }));
    const series = parts.flat();
    const opts = { start, end, step, unit: c.unit, kind: c.kind, yMin: c.unit === '' || c.unit === '/s' || c.unit === '%' ? 0 : undefined };
    state.chartData.set(c.id, [series, opts]);
    renderChart(box, series, opts);
    box.dataset.error = '';
  } catch (e) {
    box.dataset.error = e.message;
    box.replaceChildren(h('p', 'note error', e.message));
    box.dataset.points = '0';
  }
}

// ---- alerts and silences ----------------------------------------------------

const sameLabels = (a, b) => {
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => a[k] === b[k]);
};

async function refreshSilences() {
  try {
    state.silences = await call('/api/v1/silences');
    state.silencesAvailable = true;
    note('silences-note', '');
  } catch (e) {
    state.silences = [];
    state.silencesAvailable = !(e instanceof NotAvailable);
    note('silences-note', e instanceof NotAvailable ? 'Silences are not available on this server.' : e.message, e instanceof NotAvailable ? '' : 'error');
  }
  const live = state.silences.filter((s) => s.status?.state !== 'expired');
  $('silence-count').textContent = live.length ? String(live.length) : '';
  const rows = live.map((s) => {
    const li = h('li', `row silence ${s.status?.state ?? ''}`);
    li.dataset.id = s.id;
    li.dataset.state = s.status?.state ?? '';
    const what = (s.matchers || []).map((m) => `${m.name}${m.isEqual === false ? '!' : '='}${m.isRegex ? '~' : ''}"${m.value}"`).join(', ');
    li.append(h('span', 'badge ' + (s.status?.state ?? ''), s.status?.state ?? ''), h('span', 'mono grow', `{${what}}`));
    li.append(h('span', 'muted', `until ${new Date(s.endsAt).toLocaleString()} · ${s.createdBy}${s.comment ? ': ' + s.comment : ''}`));
    const b = h('button', 'small', 'Expire');
    b.type = 'button';
    b.addEventListener('click', async () => {
      b.disabled = true;
      try { await call(`/api/v1/silence/${encodeURIComponent(s.id)}`, { method: 'DELETE' }); } catch (e) { note('silences-note', e.message, 'error'); }
      await refreshAlertsAndSilences();
    });
    li.append(b);
    return li;
  });
  const empty = state.silencesAvailable ? 'No active or pending silences.' : '';
  $('silences').replaceChildren(...(rows.length || !empty ? rows : [h('li', 'muted', empty)]));
}

async function refreshAlerts() {
  let groups = null;
  try {
    groups = await call('/api/v1/alerts/groups');
  } catch (e) {
    if (!(e instanceof NotAvailable)) throw e;
  }
  const alerts = (await call('/api/v1/alerts')).alerts || [];
  const now = Date.now();
  note('alerts-note', groups === null ? 'Alert groups are not available on this server: acknowledging is disabled.' : '');
  $('alert-count').textContent = alerts.length ? String(alerts.length) : '';
  const rows = alerts.map((a) => {
    const group = groups?.find((g) => (g.alerts || []).some((x) => sameLabels(x.labels, a.labels)));
    const muted = silencesFor(a.labels, state.silences, now).length > 0 || group?.silenced === true;
    const sev = a.labels.severity || 'none';
    const li = h('li', `row alert sev-${sev}${muted ? ' silenced' : ''}`);
    li.dataset.alertname = a.labels.alertname;
    li.dataset.silenced = String(muted);
    li.dataset.state = a.state;
    li.append(h('span', `badge sev ${sev}`, sev), h('span', 'alertname', a.labels.alertname));
    const extra = Object.entries(a.labels).filter(([k]) => !['alertname', 'severity'].includes(k)).map(([k, v]) => `${k}=${v}`).join(' ');
    li.append(h('span', 'mono muted', extra), h('span', `badge ${a.state}`, a.state));
    if (muted) li.append(h('span', 'badge silenced-badge', 'silenced'));
    if (group?.acknowledged) li.append(h('span', 'badge acked', `acked by ${group.acknowledged.by}`));
    li.append(h('span', 'summary grow', a.annotations?.summary ?? ''), h('span', 'muted', a.activeAt ? ago(Date.parse(a.activeAt), now) : ''));
    const sil = h('button', 'small silence-btn', 'Silence');
    sil.type = 'button';
    sil.disabled = muted || !state.silencesAvailable;
    sil.addEventListener('click', () => openDialog('silence', a));
    const ack = h('button', 'small ack-btn', 'Acknowledge');
    ack.type = 'button';
    ack.disabled = !group || !!group.acknowledged;
    ack.addEventListener('click', () => openDialog('ack', a, group));
    li.append(sil, ack);
    return li;
  });
  $('alerts').replaceChildren(...(rows.length ? rows : [h('li', 'muted', 'No active alerts.')]));
}

async function refreshAlertsAndSilences() {
  await refreshSilences();
  try { await refreshAlerts(); } catch (e) { note('alerts-note', e.message, 'error'); }
}

let dialogAction = null;
function openDialog(kind, alert, group) {
  const d = $('dialog');
  $('dialog-title').textContent = kind === 'silence' ? `Silence ${alert.labels.alertname}` : `Acknowledge ${alert.labels.alertname}`;
  $('dialog-what').textContent = Object.entries(alert.labels).map(([k, v]) => `${k}="${v}"`).join(', ');
  $('dialog-duration-row').hidden = kind !== 'silence';
  $('dialog-by').value = localStorage.getItem('tidemark.user') || 'dashboard';
  $('dialog-comment').value = '';
  $('dialog-ok').textContent = kind === 'silence' ? 'Create silence' : 'Acknowledge';
  note('dialog-error', '');
  dialogAction = async () => {
    const by = $('dialog-by').value.trim();
    localStorage.setItem('tidemark.user', by);
    const comment = $('dialog-comment').value.trim();
    if (kind === 'silence') {
      const now = Date.now();
      await call('/api/v1/silences', {
        method: 'POST',
        body: {
          matchers: silenceMatchers(alert.labels),
          startsAt: new Date(now).toISOString(),
          endsAt: new Date(now + Number($('dialog-duration').value) * 1000).toISOString(),
          createdBy: by,
          comment: comment || `silenced from the dashboard: ${alert.labels.alertname}`,
        },
      });
    } else {
      await call(`/api/v1/alerts/groups/${encodeURIComponent(group.id)}/ack`, { method: 'POST', body: { by, comment } });
    }
  };
  d.showModal();
}

// ---- events -----------------------------------------------------------------

function eventParams(before) {
  const [start, end] = window_();
  const p = new URLSearchParams({ start: (start / 1000).toFixed(3), end: (end / 1000).toFixed(3), limit: '100' });
  for (const k of $('event-kinds').value.split(/[\s,]+/).filter(Boolean)) p.append('kind', k);
  const sel = labelFilterSelector($('event-labels').value);
  if (sel) p.append('match[]', sel);
  if (before) p.set('before', before);
  return p;
}

async function loadEvents(more = false) {
  let params;
  try { params = eventParams(more ? state.eventsNext : null); } catch (e) { note('events-note', e.message, 'error'); return; }
  let data;
  try {
    data = await call('/api/v1/events', { params });
  } catch (e) {
    note('events-note', e instanceof NotAvailable ? 'The event log is not available on this server.' : e.message, e instanceof NotAvailable ? '' : 'error');
    return;
  }
  note('events-note', '');
  state.events = more ? state.events.concat(data.events || []) : (data.events || []);
  state.eventsNext = data.next ?? null;
  state.eventsPaged = more;
  $('events-more').hidden = !state.eventsNext;
  renderEvents();
}

function kindColor(kind) {
  let x = 0;
  for (const ch of kind) x = (x * 31 + ch.charCodeAt(0)) >>> 0;
  return PALETTE[x % PALETTE.length];
}

function renderEvents() {
  const [start, end] = window_();
  for (const e of state.events) state.eventKinds.add(e.kind);
  $('event-kind-list').replaceChildren(...[...state.eventKinds].sort().map((k) => { const o = h('option'); o.value = k; return o; }));
  // The strip: one tick per event on the picked range.
  const strip = $('event-strip');
  const w = Math.max(200, strip.clientWidth || 600);
  const sx = scaleLinear(start, end, 4, w - 4);
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('width', w); svg.setAttribute('height', 22);
  for (const e of state.events) {
    const r = document.createElementNS(ns, 'rect');
    r.setAttribute('x', sx(Date.parse(e.time)).toFixed(1)); r.setAttribute('y', 3);
    r.setAttribute('width', 2); r.setAttribute('height', 16); r.setAttribute('fill', kindColor(e.kind));
    svg.append(r);
  }
  strip.replaceChildren(svg);
  strip.dataset.events = String(state.events.length);
  $('events').replaceChildren(...(state.events.length ? state.events.map((e, i) => {
    const li = h('li', 'row event');
    li.tabIndex = 0;
    li.dataset.kind = e.kind;
    const kind = h('span', 'badge kind', e.kind);
    kind.style.setProperty('--c', kindColor(e.kind));
    li.append(h('span', 'muted time', new Date(e.time).toLocaleTimeString()), kind,
      h('span', 'mono grow', Object.entries(e.labels || {}).map(([k, v]) => `${k}=${v}`).join(' ')));
    const show = () => showEvent(i);
    li.addEventListener('click', show);
    li.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') show(); });
    return li;
  }) : [h('li', 'muted', 'No events in this range.')]));
}

function showEvent(i) {
  const e = state.events[i];
  const d = $('event-details');
  d.hidden = false;
  const close = h('button', 'small', 'Close');
  close.type = 'button';
  close.addEventListener('click', () => { d.hidden = true; });
  d.replaceChildren(h('h3', '', e.kind), h('div', 'muted', new Date(e.time).toLocaleString()),
    h('pre', 'mono', JSON.stringify({ labels: e.labels || {}, fields: e.fields ?? {} }, null, 2)), close);
}

// ---- query explorer -----------------------------------------------------------

async function runExplorer() {
  const q = $('explore-query').value.trim();
  if (!q) return;
  history.replaceState(null, '', buildHash(q, state.range));
  const [start, end, step] = window_();
  const box = $('explore-chart');
  const tbody = $('explore-table').querySelector('tbody');
  try {
    const [range, inst] = await Promise.all([queryRange(q, start, end, step), query(q)]);
    note('explore-error', '');
    const series = fromMatrix(range.result);
    const opts = { start, end, step, unit: '' };
    state.chartData.set('explore-chart', [series, opts]);
    renderChart(box, series, opts);
    let rows;
    if (inst.resultType === 'vector') {
      rows = inst.result.map((s) => [JSON.stringify(s.metric).replace(/"([^"]+)":/g, '$1='), s.value[1]]);
    } else {
      rows = [[inst.resultType, String(inst.result[1])]];
    }
    tbody.replaceChildren(...rows.map(([k, v]) => {
      const tr = h('tr');
      tr.append(h('td', 'mono', k), h('td', 'num', v));
      return tr;
    }));
  } catch (e) {
    note('explore-error', e.message, 'error');
    box.replaceChildren();
    box.dataset.points = '0';
    tbody.replaceChildren();
  }
}

function fromHash() {
  const p = parseHash(location.hash);
  if (!p) return false;
  if (p.range && p.range !== state.range) setRange(p.range, false);
  $('explore-query').value = p.q;
  return true;
}

// ---- wiring -------------------------------------------------------------------

function setRange(label, refresh = true) {
  state.range = label;
  localStorage.setItem('tidemark.range', label);
  for (const b of $('ranges').children) b.setAttribute('aria-pressed', String(b.dataset.range === label));
  if (refresh) {
    refreshAll();
    loadEvents();
    if ($('explore-query').value.trim()) runExplorer();
  }
}

async function refreshAll() {
  if (document.hidden) return; // a background tab costs the server nothing
  const jobs = [
    once('health', refreshHealth),
    once('cards', refreshCards),
    ...CHARTS.map((c) => once(c.id, () => refreshChart(c))),
    once('alerts', refreshAlertsAndSilences),
  ];
  if (!state.eventsPaged) jobs.push(once('events', () => loadEvents(false)));
  await Promise.allSettled(jobs);
  const failed = [...document.querySelectorAll('.chart[data-error]')].map((b) => b.dataset.error).find(Boolean);
  banner(failed && failed.includes('token') ? failed : '');
  $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function init() {
  adoptToken();
  if (!RANGES.some(([l]) => l === state.range)) state.range = '1h';
  $('ranges').replaceChildren(...RANGES.map(([label]) => {
    const b = h('button', 'range', label);
    b.type = 'button';
    b.dataset.range = label;
    b.addEventListener('click', () => setRange(label));
    return b;
  }));
  setRange(state.range, false);
  buildCards();
  $('event-filter').addEventListener('submit', (ev) => { ev.preventDefault(); loadEvents(false); });
  $('events-more').addEventListener('click', () => loadEvents(true));
  $('explore-form').addEventListener('submit', (ev) => { ev.preventDefault(); runExplorer(); });
  $('explore-query').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); runExplorer(); }
  });
  $('dialog-form').addEventListener('submit', async (ev) => {
    if (ev.submitter?.value === 'cancel') return; // method=dialog closes it
    ev.preventDefault();
    $('dialog-ok').disabled = true;
    try {
      await dialogAction();
      $('dialog').close();
      await refreshAlertsAndSilences();
    } catch (e) {
      note('dialog-error', e.message, 'error');
    } finally {
      $('dialog-ok').disabled = false;
    }
  });
  window.addEventListener('hashchange', () => { if (fromHash()) runExplorer(); });
  let resizeTimer;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const [id, [series, opts]] of state.chartData) renderChart($(id), series, opts);
      renderEvents();
    }, 150);
  });
  if (fromHash()) runExplorer();
  refreshAll();
  setInterval(refreshAll, REFRESH_MS);
  document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshAll(); });
}

init();
