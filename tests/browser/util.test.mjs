// Unit tests of the dashboard's pure helpers (steps, hash, silences).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  RANGES, pickStep, promDuration, rateWindow, parseHash, buildHash, matcherMatches,
  silencesFor, silenceMatchers, labelFilterSelector, ago,
} from '../../src/server/dashboard/util.js';

test('pickStep keeps every range at or under 500 points with round steps', () => {
  for (const [label, secs] of RANGES) {
    const step = pickStep(secs);
    assert.ok(secs / step <= 500, `${label}: ${secs / step} points`);
    assert.ok(secs / step >= 50, `${label}: only ${secs / step} points`);
  }
  assert.equal(pickStep(900), 15);
  assert.equal(pickStep(3600), 15);
  assert.equal(pickStep(86400), 300);
  assert.equal(pickStep(31536000), 86400);
  assert.equal(pickStep(10 * 31536000), 630720); // beyond the table: still ≤ 500 points
});

test('promDuration and rateWindow', () => {
  assert.equal(promDuration(90), '90s');
  assert.equal(promDuration(120), '2m');
  assert.equal(promDuration(7200), '2h');
  assert.equal(promDuration(86400), '1d');
  assert.equal(rateWindow(15), '1m');
  assert.equal(rateWindow(300), '5m');
});

test('explorer hash round-trips queries with special characters', () => {
  const q = 'sum by (component) (rate(errors_total{kind=~"a|b"}[5m])) > 0 & x';
  const h = buildHash(q, '6h');
  assert.deepEqual(parseHash(h), { q, range: '6h' });
  assert.deepEqual(parseHash(h.slice(1)), { q, range: '6h' });
  assert.equal(parseHash('#alerts-panel'), null);
  assert.equal(parseHash(''), null);
  assert.equal(parseHash('#explore?q=up&range=3w').range, null); // unknown range ignored
});

test('matchers: equality, negation, anchored regex, missing labels', () => {
  const l = { alertname: 'CircuitBreakerOpen', component: 'payments' };
  assert.ok(matcherMatches({ name: 'component', value: 'payments', isRegex: false, isEqual: true }, l));
  assert.ok(!matcherMatches({ name: 'component', value: 'pay', isRegex: true, isEqual: true }, l));
  assert.ok(matcherMatches({ name: 'component', value: 'pay.*', isRegex: true, isEqual: true }, l));
  assert.ok(matcherMatches({ name: 'component', value: 'db', isRegex: false, isEqual: false }, l));
  assert.ok(matcherMatches({ name: 'missing', value: '', isRegex: false, isEqual: true }, l));
  assert.ok(!matcherMatches({ name: 'component', value: '(', isRegex: true, isEqual: true }, l));
});

test('silencesFor: only active silences whose matchers all match', () => {
  const now = Date.parse('2026-11-27T08:00:00Z');
  const labels = { alertname: 'A', component: 'db', severity: 'critical' };
  const mk = (state, matchers) => ({ id: state + matchers.length, status: { state }, matchers });
  const m = silenceMatchers(labels);
  assert.deepEqual(m.map((x) => x.name), ['alertname', 'component', 'severity']);
  assert.ok(m.every((x) => x.isEqual && !x.isRegex));
  const sil = [mk('active', m), mk('expired', m), mk('active', [...m, { name: 'component', value: 'web', isRegex: false, isEqual: true }])];
  assert.deepEqual(silencesFor(labels, sil, now).map((s) => s.id), ['active3']);
  // Without a status, the times decide.
  const timed = { matchers: m, startsAt: '2026-11-27T07:00:00Z', endsAt: '2026-11-27T09:00:00Z' };
  assert.equal(silencesFor(labels, [timed], now).length, 1);
  assert.equal(silencesFor(labels, [timed], Date.parse('2026-11-27T10:00:00Z')).length, 0);
  assert.deepEqual(silenceMatchers({ alertname: 'A', alertstate: 'firing' }).map((x) => x.name), ['alertname']);
});

test('labelFilterSelector builds match[] selectors and names the bad part', () => {
  assert.equal(labelFilterSelector(''), null);
  assert.equal(labelFilterSelector('component="db"'), '{component="db"}');
  assert.equal(labelFilterSelector('{component="db", kind=~"time.*"}'), '{component="db",kind=~"time.*"}');
  assert.equal(labelFilterSelector('a!="x\\"y"'), '{a!="x\\"y"}');
  assert.throws(() => labelFilterSelector('component=db'), /near "component=db"/);
  assert.throws(() => labelFilterSelector('a="1" b="2"'), /bad label filter/);
});

test('ago', () => {
  assert.equal(ago(0, 42e3), '42s ago');
  assert.equal(ago(0, 3 * 3600e3), '3h ago');
  assert.equal(ago(10, 0), '0s ago');
});
