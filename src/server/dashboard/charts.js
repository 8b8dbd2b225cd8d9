// Tidemark's chart code: time-series line charts, breaker-state lanes and
// sparklines drawn as SVG. No library: the pure parts (nice numbers, ticks,
// scales, value formatting, path building) are exported and unit-tested
// with `node --test` (tests/browser/charts.test.mjs); the DOM part only
// assembles SVG from them.
//
// Every drawn chart sets data-points (finite points drawn), data-series and
// data-step (seconds) on its container, which the browser test reads.

const SVG_NS = 'http://www.w3.org/2000/svg';
export const PALETTE = ['#2f7fd8', '#e4572e', '#29a36a', '#9b5de5', '#f3a712', '#17a2b8', '#d6336c', '#6c757d'];

/** Heckbert's nice number: 1, 2, 5 or 10 times a power of ten near `x`. */
export function niceNum(x, round) {
  if (!(x > 0) || !Number.isFinite(x)) return 1;
  const exp = Math.floor(Math.log10(x));
  const f = x / 10 ** exp;
  let nf;
  if (round) nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  else nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return nf * 10 ** exp;
}

/** Round `v` to the precision of `step` (kills 0.30000000000000004). */
function snap(v, step) {
  const digits = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(v.toFixed(Math.min(digits, 15)));
}

/**
 * Nice y-axis ticks covering [min, max] with about `count` intervals:
 * `{min, max, step, ticks}` where min/max are multiples of step.
 */
export function niceTicks(min, max, count = 5) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) { min = 0; max = 1; }
  if (min > max) [min, max] = [max, min];
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    min -= pad; max += pad;
  }
  const range = niceNum(max - min, false);
  const step = niceNum(range / Math.max(1, count), true);
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = lo, i = 0; v <= hi + step / 2 && i < 100; v += step, i++) ticks.push(snap(v, step));
  return { min: snap(lo, step), max: snap(hi, step), step, ticks };
}

/** A linear map from [d0, d1] to [r0, r1]. */
export function scaleLinear(d0, d1, r0, r1) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

const SEC = 1000, MIN = 60 * SEC, HOUR = 60 * MIN, DAY = 24 * HOUR;
/** Candidate tick spacings for time axes, in ms. */
export const TIME_STEPS = [SEC, 2 * SEC, 5 * SEC, 10 * SEC, 15 * SEC, 30 * SEC, MIN, 2 * MIN, 5 * MIN,
  10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad2 = (n) => String(n).padStart(2, '0');

/**
 * Time-axis ticks for [startMs, endMs] with at most `maxTicks` ticks,
 * aligned to round local times (`tzOffsetMin` minutes east of UTC, so tests
 * are independent of the machine's zone). Spans over ~3 months tick on the
 * first of a month. Returns `[{t, label}]`.
 */
export function timeTicks(startMs, endMs, maxTicks = 6, tzOffsetMin = 0) {
  const span = endMs - startMs;
  if (!(span > 0)) return [];
  const off = tzOffsetMin * MIN;
  const local = (t) => new Date(t + off); // read with getUTC*
  const out = [];
  if (span / (30 * DAY) > maxTicks / 2 || span > 90 * DAY) {
    const months = [1, 2, 3, 6, 12, 24, 60, 120].find((m) => Math.floor(span / (m * 28 * DAY)) + 1 <= maxTicks) ?? 120;
    const d = local(startMs);
    const first = Math.ceil((d.getUTCFullYear() * 12 + d.getUTCMonth()) / months) * months;
    for (let i = 0; i < 200; i++) {
      const idx = first + i * months;
      const t = Date.UTC(Math.floor(idx / 12), idx % 12, 1) - off;
      if (t < startMs) continue;
      if (t > endMs) break;
      const l = local(t);
      const label = l.getUTCMonth() === 0 ? String(l.getUTCFullYear()) : MONTHS[l.getUTCMonth()];
      out.push({ t, label });
    }
    return out;
  }
  const step = TIME_STEPS.find((s) => Math.floor(span / s) + 1 <= maxTicks) ?? 14 * DAY;
  const first = Math.ceil((startMs + off) / step) * step - off;
  for (let t = first; t <= endMs; t += step) {
    const l = local(t);
    let label;
    if (step >= DAY || (l.getUTCHours() === 0 && l.getUTCMinutes() === 0 && span > DAY)) {
      label = `${MONTHS[l.getUTCMonth()]} ${l.getUTCDate()}`;
    } else if (step < MIN) {
      label = `${pad2(l.getUTCHours())}:${pad2(l.getUTCMinutes())}:${pad2(l.getUTCSeconds())}`;
    } else {
      label = `${pad2(l.getUTCHours())}:${pad2(l.getUTCMinutes())}`;
    }
    out.push({ t, label });
  }
  return out;
}

function trimNum(x, digits) {
  const s = x.toFixed(digits);
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

/** SI-prefixed number: 1234 → "1.23k". */
export function formatSI(v) {
  const a = Math.abs(v);
  if (a === 0) return '0';
  const units = [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']];
  for (const [k, s] of units) if (a >= k) return trimNum(v / k, a / k >= 100 ? 0 : a / k >= 10 ? 1 : 2) + s;
  if (a >= 100) return trimNum(v, 0);
  if (a >= 1) return trimNum(v, 2);
  if (a >= 0.001) return trimNum(v, 3);
  return v.toExponential(1);
}

/** Seconds as a human duration: 0.0042 → "4.2ms", 90 → "1.5m". */
export function formatDuration(s) {
  const a = Math.abs(s);
  if (a === 0) return '0s';
  if (a < 1e-3) return trimNum(s * 1e6, a * 1e6 >= 10 ? 0 : 1) + 'µs';
  if (a < 1) return trimNum(s * 1e3, a * 1e3 >= 10 ? 0 : 1) + 'ms';
  if (a < 60) return trimNum(s, a >= 10 ? 1 : 2) + 's';
  if (a < 3600) return trimNum(s / 60, 1) + 'm';
  if (a < 86400) return trimNum(s / 3600, 1) + 'h';
  return trimNum(s / 86400, 1) + 'd';
}

/**
 * A value with its unit: '%' (a ratio 0..1 shown as percent), 's'
 * (seconds), '/s' (a rate), 'state' (breaker 0 / 0.5 / 1) or '' (plain).
 */
export function formatValue(v, unit = '') {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  switch (unit) {
    case '%': return trimNum(v * 100, Math.abs(v) >= 0.1 ? 1 : 2) + '%';
    case 's': return formatDuration(v);
    case '/s': return formatSI(v) + '/s';
    case 'state': return v >= 1 ? 'open' : v > 0 ? 'half-open' : 'closed';
    default: return formatSI(v);
  }
}

/** Prometheus sample value string → number ("NaN", "+Inf" included). */
export function parseValue(s) {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return Number(s);
}

/** A series' legend name: its labels minus `drop`, or the metric name. */
export function seriesName(metric, drop = []) {
  const parts = Object.entries(metric || {})
    .filter(([k]) => k !== '__name__' && !drop.includes(k))
    .map(([k, v]) => `${k}="${v}"`);
  if (parts.length === 0) return metric?.__name__ ?? '{}';
  return parts.length === 1 ? parts[0].replace(/^[^=]+="(.*)"$/, '$1') : `{${parts.join(', ')}}`;
}

/** Prometheus matrix result → `[{name, metric, points: [[ms, v], ...]}]`. */
export function fromMatrix(result, drop = []) {
  return (result || []).map((s) => ({
    name: seriesName(s.metric, drop),
    metric: s.metric,
    points: (s.values || []).map(([t, v]) => [Math.round(t * 1000), parseValue(v)]),
  }));
}

/**
 * SVG path data for a line through `points` ([ms, v]); a non-finite value
 * or a time gap wider than `maxGapMs` lifts the pen, so missing data shows
 * as a gap. A lone point becomes a tiny dash so it stays visible.
 */
export function linePath(points, sx, sy, maxGapMs = Infinity) {
  let d = '';
  let prevT = null;
  let runLen = 0;
  for (const [t, v] of points) {
    if (!Number.isFinite(v)) { prevT = null; continue; }
    const x = sx(t).toFixed(1), y = sy(v).toFixed(1);
    if (prevT === null || t - prevT > maxGapMs) {
      if (runLen === 1) d += 'h1';
      d += `M${x} ${y}`;
      runLen = 1;
    } else {
      d += `L${x} ${y}`;
      runLen++;
    }
    prevT = t;
  }
  if (runLen === 1) d += 'h1';
  return d;
}

/**
 * Closed step-after area (each value holds until the next sample) between
 * `points` and the baseline `y0`; gaps like `linePath`. A run ends one
 * `stepMs` after its last sample.
 */
export function stepAreaPath(points, sx, sy, y0, stepMs, maxGapMs = Infinity) {
  let d = '';
  let run = [];
  const flush = () => {
    if (run.length === 0) return;
    const end = run[run.length - 1][0] + stepMs;
    d += `M${sx(run[0][0]).toFixed(1)} ${y0.toFixed(1)}`;
    run.forEach(([t, v], i) => {
      const next = i + 1 < run.length ? run[i + 1][0] : end;
      d += `V${sy(v).toFixed(1)}H${sx(next).toFixed(1)}`;
    });
    d += `V${y0.toFixed(1)}Z`;
    run = [];
  };
  for (const p of points) {
    if (!Number.isFinite(p[1])) { flush(); continue; }
    if (run.length && p[0] - run[run.length - 1][0] > maxGapMs) flush();
    run.push(p);
  }
  flush();
  return d;
}

/** Index of the point whose time is nearest `t` (points sorted by time). */
export function nearestIndex(points, t) {
  let lo = 0, hi = points.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid][0] < t) lo = mid + 1; else hi = mid;
  }
  if (lo > 0 && t - points[lo - 1][0] < points[lo][0] - t) lo--;
  return lo;
}

/** Finite [min, max] of all series' values, or null. */
export function extent(series) {
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const [, v] of s.points) if (Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return lo <= hi ? [lo, hi] : null;
}

const countPoints = (series) => series.reduce((n, s) => n + s.points.filter((p) => Number.isFinite(p[1])).length, 0);

// ---- DOM ---------------------------------------------------------------

function el(name, attrs = {}, text) {
  const e = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function html(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * Draws `series` into `box` (replacing its content).
 * opts: {start, end (ms), step (s), unit, kind: 'line' | 'state', yMin, height}
 */
export function renderChart(box, series, opts) {
  const { start, end, step = 15, unit = '', kind = 'line', height = 200 } = opts;
  box.replaceChildren();
  box.dataset.points = String(countPoints(series));
  box.dataset.series = String(series.length);
  box.dataset.step = String(step);
  const width = Math.max(240, box.clientWidth || 600);
  const stepMs = step * 1000, maxGap = stepMs * 1.5 + 1;
  const state = kind === 'state';
  const lanes = state ? Math.max(1, series.length) : 1;
  const h = state ? Math.max(height, 28 * lanes + 30) : height;
  const m = { l: state ? 96 : 52, r: 10, t: 8, b: 22 };
  const iw = width - m.l - m.r, ih = h - m.t - m.b;
  const svg = el('svg', { width, height: h, viewBox: `0 0 ${width} ${h}`, class: 'chart-svg', role: 'img' });
  const sx = scaleLinear(start, end, m.l, m.l + iw);
  for (const { t, label } of timeTicks(start, end, Math.max(2, Math.floor(iw / 90)), -new Date().getTimezoneOffset())) {
    const x = sx(t);
    svg.append(el('line', { x1: x, x2: x, y1: m.t, y2: m.t + ih, class: 'grid' }));
    svg.append(el('text', { x, y: h - 6, class: 'tick', 'text-anchor': 'middle' }, label));
  }
  if (series.length === 0 || countPoints(series) === 0) {
    svg.append(el('text', { x: m.l + iw / 2, y: m.t + ih / 2, class: 'empty', 'text-anchor': 'middle' }, 'no data in this range'));
    box.append(svg);
    return;
  }
  const drawn = []; // [{s, color, sy}] for the tooltip
  if (state) {
    const laneH = ih / lanes;
    const sxIn = (t) => Math.min(m.l + iw, Math.max(m.l, sx(t))); // the last step ends at the edge
    series.forEach((s, i) => {
      const y0 = m.t + laneH * (i + 1) - 2;
      const sy = scaleLinear(0, 1, y0, y0 - laneH + 4);
      svg.append(el('line', { x1: m.l, x2: m.l + iw, y1: y0, y2: y0, class: 'grid' }));
      svg.append(el('text', { x: m.l - 6, y: y0 - laneH / 2 + 6, class: 'tick', 'text-anchor': 'end' }, s.name.slice(0, 14)));
      svg.append(el('path', { d: stepAreaPath(s.points, sxIn, sy, y0, stepMs, maxGap), class: 'state-area' }));
      drawn.push({ s, color: '#e4572e', sy });
    });
  } else {
    const [lo, hi] = extent(series);
    const yt = niceTicks(Math.min(opts.yMin ?? lo, lo), hi, Math.max(2, Math.floor(ih / 40)));
    const sy = scaleLinear(yt.min, yt.max, m.t + ih, m.t);
    for (const v of yt.ticks) {
      svg.append(el('line', { x1: m.l, x2: m.l + iw, y1: sy(v), y2: sy(v), class: 'grid' }));
      svg.append(el('text', { x: m.l - 6, y: sy(v) + 4, class: 'tick', 'text-anchor': 'end' }, formatValue(v, unit)));
    }
    series.forEach((s, i) => {
      const color = PALETTE[i % PALETTE.length];
      svg.append(el('path', { d: linePath(s.points, sx, sy, maxGap), stroke: color, class: 'line' }));
      drawn.push({ s, color, sy });
    });
  }
  const cursor = el('line', { y1: m.t, y2: m.t + ih, class: 'cursor', visibility: 'hidden' });
  svg.append(cursor);
  const wrap = html('div', 'chart-wrap');
  const tip = html('div', 'tooltip');
  tip.hidden = true;
  wrap.append(svg, tip);
  box.append(wrap);
  if (!state && series.length > 1) {
    const legend = html('div', 'legend');
    series.slice(0, 12).forEach((s, i) => {
      const item = html('span', 'legend-item', s.name);
      item.style.setProperty('--c', PALETTE[i % PALETTE.length]);
      legend.append(item);
    });
    if (series.length > 12) legend.append(html('span', 'legend-item more', `+${series.length - 12} more`));
    box.append(legend);
  }
  svg.addEventListener('pointermove', (ev) => {
    const r = svg.getBoundingClientRect();
    const x = ev.clientX - r.left;
    if (x < m.l || x > m.l + iw) { cursor.setAttribute('visibility', 'hidden'); tip.hidden = true; return; }
    const t = start + ((x - m.l) / iw) * (end - start);
    cursor.setAttribute('x1', x); cursor.setAttribute('x2', x);
    cursor.setAttribute('visibility', 'visible');
    tip.replaceChildren(html('div', 'tip-time', new Date(t).toLocaleString()));
    for (const { s, color } of drawn.slice(0, 10)) {
      const i = nearestIndex(s.points, t);
      if (i < 0 || Math.abs(s.points[i][0] - t) > maxGap) continue;
      const row = html('div', 'tip-row', `${s.name}: ${formatValue(s.points[i][1], state ? 'state' : unit)}`);
      row.style.setProperty('--c', color);
      tip.append(row);
    }
    tip.hidden = false;
    tip.style.left = `${Math.min(x + 12, width - 180)}px`;
  });
  svg.addEventListener('pointerleave', () => { cursor.setAttribute('visibility', 'hidden'); tip.hidden = true; });
}

/** A small trend line for a metric card. */
export function renderSparkline(box, points, { start, end, step = 15 } = {}) {
  box.replaceChildren();
  const finite = points.filter((p) => Number.isFinite(p[1]));
  box.dataset.points = String(finite.length);
  const w = 120, h = 32;
  const svg = el('svg', { width: '100%', height: h, viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: 'none', class: 'spark-svg', 'aria-hidden': 'true' });
  if (finite.length) {
    const lo = Math.min(...finite.map((p) => p[1])), hi = Math.max(...finite.map((p) => p[1]));
    const sx = scaleLinear(start ?? finite[0][0], end ?? finite[finite.length - 1][0], 1, w - 1);
    const sy = hi === lo ? () => h / 2 : scaleLinear(lo, hi, h - 2, 2);
    svg.append(el('path', { d: linePath(points, sx, sy, step * 1500 + 1), class: 'spark', 'vector-effect': 'non-scaling-stroke' }));
  }
  box.append(svg);
}
