// Unit tests of the dashboard's chart code (pure parts): run with
// `node --test` in tests/browser (the cargo test dashboard_browser runs them too).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  niceNum, niceTicks, scaleLinear, timeTicks, formatValue, formatDuration, formatSI,
  parseValue, seriesName, fromMatrix, linePath, stepAreaPath, nearestIndex, extent,
} from '../../src/server/dashboard/charts.js';

test('niceNum picks 1, 2, 5 or 10 times a power of ten', () => {
  assert.equal(niceNum(0.37, false), 0.5);
  assert.equal(niceNum(0.37, true), 0.5);
  assert.equal(niceNum(130, true), 100);
  assert.equal(niceNum(130, false), 200);
  assert.equal(niceNum(7.2, true), 10);
  assert.equal(niceNum(0, true), 1); // degenerate input stays usable
});

test('niceTicks covers the data with round steps', () => {
  const t = niceTicks(0, 0.37, 5);
  assert.deepEqual(t.ticks, [0, 0.1, 0.2, 0.3, 0.4]);
  assert.equal(t.min, 0);
  assert.equal(t.max, 0.4);
  const u = niceTicks(13, 987, 4);
  assert.ok(u.min <= 13 && u.max >= 987, JSON.stringify(u));
  assert.ok([100, 200, 500].includes(u.step), String(u.step));
  // Every tick is a multiple of the step, with no float noise in it.
  for (const v of niceTicks(0.1, 0.7, 6).ticks) assert.equal(String(v).length <= 4, true, String(v));
});

test('niceTicks survives flat, reversed and non-finite input', () => {
  const flat = niceTicks(5, 5, 4);
  assert.ok(flat.min < 5 && flat.max > 5);
  const zero = niceTicks(0, 0, 4);
  assert.ok(zero.min <= 0 && zero.max >= 1);
  assert.deepEqual(niceTicks(10, 0, 5).ticks, niceTicks(0, 10, 5).ticks);
  assert.deepEqual(niceTicks(NaN, Infinity, 5).ticks.slice(0, 1), [0]);
});

test('scaleLinear maps domain ends to range ends, inverted axes included', () => {
  const s = scaleLinear(0, 10, 200, 0);
  assert.equal(s(0), 200);
  assert.equal(s(10), 0);
  assert.equal(s(2.5), 150);
  assert.equal(scaleLinear(3, 3, 0, 100)(3), 0);
});

const H = 3600e3;
test('timeTicks: one hour ticks every 15 minutes on round times', () => {
  const start = Date.UTC(2026, 10, 27, 7, 3), end = start + H;
  const t = timeTicks(start, end, 6);
  assert.deepEqual(t.map((x) => x.label), ['07:15', '07:30', '07:45', '08:00']);
  for (const { t: ms } of t) assert.equal(ms % (15 * 60e3), 0);
});

test('timeTicks: never more than maxTicks, every range from 1 minute to 5 years', () => {
  const start = Date.UTC(2026, 0, 1, 0, 0, 7);
  for (const span of [60e3, 15 * 60e3, H, 6 * H, 24 * H, 7 * 24 * H, 30 * 24 * H, 90 * 24 * H, 365 * 24 * H, 5 * 365 * 24 * H]) {
    for (const max of [3, 6, 10]) {
      const t = timeTicks(start, start + span, max);
      assert.ok(t.length >= 1 && t.length <= max, `span ${span} max ${max}: ${t.length}`);
      assert.ok(t.every((x, i) => x.t >= start && x.t <= start + span && (i === 0 || x.t > t[i - 1].t)));
    }
  }
});

test('timeTicks labels days and months on long ranges, honours the zone offset', () => {
  const start = Date.UTC(2026, 10, 20), end = start + 7 * 24 * H;
  assert.deepEqual(timeTicks(start, end, 8).map((x) => x.label).slice(0, 2), ['Nov 20', 'Nov 21']);
  const year = timeTicks(Date.UTC(2025, 10, 27), Date.UTC(2026, 10, 27), 6);
  assert.ok(year.some((x) => x.label === '2026'), JSON.stringify(year));
  assert.ok(year.every((x) => new Date(x.t).getUTCDate() === 1));
  // +120 minutes: a tick at local midnight is 22:00 UTC.
  const local = timeTicks(Date.UTC(2026, 10, 20, 12), Date.UTC(2026, 10, 23, 12), 4, 120);
  assert.equal(new Date(local[0].t).getUTCHours(), 22);
  assert.equal(timeTicks(5, 5, 4).length, 0);
});

test('formatValue: units', () => {
  assert.equal(formatValue(0.0523, '%'), '5.23%');
  assert.equal(formatValue(0.5, '%'), '50%');
  assert.equal(formatValue(0.0042, 's'), '4.2ms');
  assert.equal(formatValue(12.34, 's'), '12.3s');
  assert.equal(formatValue(90, 's'), '1.5m');
  assert.equal(formatValue(1234, '/s'), '1.23k/s');
  assert.equal(formatValue(2.5e6, ''), '2.5M');
  assert.equal(formatValue(1, 'state'), 'open');
  assert.equal(formatValue(0.5, 'state'), 'half-open');
  assert.equal(formatValue(0, 'state'), 'closed');
  assert.equal(formatValue(NaN, '%'), '–');
  assert.equal(formatValue(Infinity, 's'), '+Inf');
  assert.equal(formatDuration(0.00005), '50µs');
  assert.equal(formatDuration(7200), '2h');
  assert.equal(formatSI(0), '0');
  assert.equal(formatSI(-0.25), '-0.25');
});

test('fromMatrix parses Prometheus values and names series by their distinct labels', () => {
  const s = fromMatrix([
    { metric: { __name__: 'x', component: 'db' }, values: [[1700000000, '1'], [1700000015.5, 'NaN'], [1700000030, '+Inf']] },
    { metric: { a: '1', b: '2' }, values: [] },
    { metric: { __name__: 'up' }, values: [] },
  ]);
  assert.equal(s[0].name, 'db');
  assert.deepEqual(s[0].points[0], [1700000000000, 1]);
  assert.equal(s[0].points[1][0], 1700000015500);
  assert.ok(Number.isNaN(s[0].points[1][1]));
  assert.equal(s[0].points[2][1], Infinity);
  assert.equal(s[1].name, '{a="1", b="2"}');
  assert.equal(s[2].name, 'up');
  assert.equal(parseValue('-Inf'), -Infinity);
  assert.equal(seriesName({}), '{}');
});

const id = (v) => v;
test('linePath lifts the pen at NaN and at time gaps', () => {
  const pts = [[0, 1], [10, 2], [20, NaN], [30, 3], [40, 4], [100, 5]];
  assert.equal(linePath(pts, id, id, 15), 'M0.0 1.0L10.0 2.0M30.0 3.0L40.0 4.0M100.0 5.0h1');
  assert.equal(linePath(pts.slice(0, 2), id, id), 'M0.0 1.0L10.0 2.0');
  assert.equal(linePath([], id, id), '');
  // A lone point between gaps is still drawn (as a 1px dash).
  assert.equal(linePath([[0, 1], [50, 2], [100, 3]], id, id, 10), 'M0.0 1.0h1M50.0 2.0h1M100.0 3.0h1');
});

test('stepAreaPath holds each value until the next sample and closes to the baseline', () => {
  const d = stepAreaPath([[0, 0], [10, 1], [20, 1]], id, (v) => 100 - v * 50, 100, 10);
  assert.equal(d, 'M0.0 100.0V100.0H10.0V50.0H20.0V50.0H30.0V100.0Z');
  const gap = stepAreaPath([[0, 1], [10, NaN], [20, 1]], id, (v) => 100 - v * 50, 100, 10);
  assert.equal(gap.split('Z').length - 1, 2); // two separate areas
  assert.equal(stepAreaPath([], id, id, 0, 10), '');
});

test('nearestIndex and extent', () => {
  const pts = [[0, 1], [10, 5], [20, NaN], [30, -2]];
  assert.equal(nearestIndex(pts, -5), 0);
  assert.equal(nearestIndex(pts, 4), 0);
  assert.equal(nearestIndex(pts, 6), 1);
  assert.equal(nearestIndex(pts, 99), 3);
  assert.equal(nearestIndex([], 3), -1);
  assert.deepEqual(extent([{ points: pts }, { points: [[0, 9]] }]), [-2, 9]);
  assert.equal(extent([{ points: [[0, NaN]] }]), null);
});
