// Pure helpers of the dashboard (no DOM): time ranges and query steps, the
// explorer's shareable hash, silence matching, label-matcher parsing.
// Unit-tested by tests/browser/util.test.mjs.

/** The time-range picker: label → seconds. */
export const RANGES = [
  ['15m', 900], ['1h', 3600], ['6h', 21600], ['24h', 86400],
  ['7d', 604800], ['30d', 2592000], ['90d', 7776000], ['1y', 31536000],
];

/** Query steps the dashboard uses, in seconds (round, tier-friendly). */
export const STEPS = [15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

/**
 * The smallest round step giving at most `maxPoints` points over
 * `rangeSeconds`; the server picks the rollup tier from it.
 */
export function pickStep(rangeSeconds, maxPoints = 500) {
  return STEPS.find((s) => rangeSeconds / s <= maxPoints) ?? Math.ceil(rangeSeconds / maxPoints);
}

/** A Prometheus duration for seconds: 90 → "90s", 3600 → "1h". */
export function promDuration(s) {
  if (s % 86400 === 0) return `${s / 86400}d`;
  if (s % 3600 === 0) return `${s / 3600}h`;
  if (s % 60 === 0) return `${s / 60}m`;
  return `${s}s`;
}

/**
 * The window for `rate()` / `*_over_time()` at `step`: at least 1m (four
 * 15 s samples) and at least one step, so every sample counts somewhere.
 */
export function rateWindow(step) {
  return promDuration(Math.max(60, step));
}

/** Parses the explorer hash `#explore?q=...&range=1h` (or ''). */
export function parseHash(hash) {
  const m = /^#?explore\?(.*)$/.exec(hash || '');
  if (!m) return null;
  const p = new URLSearchParams(m[1]);
  const range = RANGES.find(([l]) => l === p.get('range'))?.[0] ?? null;
  return { q: p.get('q') ?? '', range };
}

/** The shareable hash for query `q` over range label `range`. */
export function buildHash(q, range) {
  const p = new URLSearchParams();
  p.set('q', q);
  if (range) p.set('range', range);
  return `#explore?${p.toString()}`;
}

/** Does one Alertmanager-style matcher match `labels`? */
export function matcherMatches(m, labels) {
  const v = labels[m.name] ?? '';
  let hit;
  if (m.isRegex) {
    try { hit = new RegExp(`^(?:${m.value})$`).test(v); } catch { hit = false; }
  } else {
    hit = v === m.value;
  }
  return m.isEqual === false ? !hit : hit;
}

/** Is a silence active (by its status, or by its times) at `nowMs`? */
export function silenceActive(s, nowMs) {
  if (s.status?.state) return s.status.state === 'active';
  return Date.parse(s.startsAt) <= nowMs && nowMs < Date.parse(s.endsAt);
}

/** The active silences among `silences` that mute an alert with `labels`. */
export function silencesFor(labels, silences, nowMs) {
  return silences.filter((s) => silenceActive(s, nowMs) && (s.matchers || []).every((m) => matcherMatches(m, labels)));
}

/**
 * Matchers that silence exactly this alert: every label but the
 * evaluation-time ones, as equality matchers.
 */
export function silenceMatchers(labels) {
  return Object.entries(labels)
    .filter(([k]) => k !== 'alertstate')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => ({ name, value, isRegex: false, isEqual: true }));
}

/**
 * Parses a label filter such as `component="db", kind=~"time.*"` into a
 * selector for `match[]` (`{...}`); throws an Error naming the bad part.
 */
export function labelFilterSelector(text) {
  const t = (text || '').trim().replace(/^\{|\}$/g, '').trim();
  if (!t) return null;
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  const parts = [];
  let i = 0;
  while (i < t.length) {
    re.lastIndex = i;
    const m = re.exec(t);
    if (!m) throw new Error(`bad label filter near "${t.slice(i, i + 20)}": use name="value", comma-separated`);
    parts.push(`${m[1]}${m[2]}"${m[3]}"`);
    i = re.lastIndex;
  }
  return `{${parts.join(',')}}`;
}

/** "3m ago" style relative time. */
export function ago(ms, nowMs) {
  const s = Math.max(0, Math.round((nowMs - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
