// The dashboard's HTTP client: the Prometheus API and the endpoints of
// src/server/http-api.md, nothing else. Adds the bearer token (from
// `?token=`, kept in localStorage; `?admin_token=` for the POST/DELETE
// calls when the server's admin token differs from its read token) and turns answers into values or typed
// errors: `NotAvailable` for a 404 (an endpoint this server does not have),
// `ApiError` with the server's message otherwise.

const TOKEN_KEY = 'tidemark.token';
const ADMIN_KEY = 'tidemark.admin_token';

export class NotAvailable extends Error {
  constructor(path) {
    super(`${path} is not available on this server`);
    this.name = 'NotAvailable';
  }
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/**
 * Moves `?token=` and `?admin_token=` from the URL into localStorage (an
 * empty value forgets it), so the token is not left in the address bar.
 */
export function adoptToken(loc = window.location) {
  const url = new URL(loc.href);
  let changed = false;
  for (const [param, key] of [['token', TOKEN_KEY], ['admin_token', ADMIN_KEY]]) {
    const t = url.searchParams.get(param);
    if (t === null) continue;
    if (t) localStorage.setItem(key, t); else localStorage.removeItem(key);
    url.searchParams.delete(param);
    changed = true;
  }
  if (changed) history.replaceState(null, '', url.pathname + url.search + url.hash);
}

/**
 * Calls `path` (with `params`: object or URLSearchParams) and returns the
 * envelope's `data`. `body` is sent as JSON.
 */
export async function call(path, { method = 'GET', params, body } = {}) {
  const qs = params ? `?${new URLSearchParams(params).toString()}` : '';
  const headers = { Accept: 'application/json' };
  const token = (method !== 'GET' && localStorage.getItem(ADMIN_KEY)) || localStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path + qs, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, `server unreachable (${e.message})`);
  }
  if (resp.status === 404) throw new NotAvailable(path);
  if (resp.status === 204) return null;
  let json = null;
  try { json = await resp.json(); } catch { /* not JSON */ }
  if (!resp.ok || json?.status === 'error') {
    const msg = json?.error ?? `HTTP ${resp.status}`;
    if (resp.status === 401) throw new ApiError(401, `${msg} — open the dashboard as /?token=<read token> (and &admin_token=<admin token> to change silences)`);
    throw new ApiError(resp.status, msg);
  }
  return json?.data ?? json;
}

/** `query_range` over [startMs, endMs] at `step` seconds. */
export function queryRange(query, startMs, endMs, step) {
  return call('/api/v1/query_range', {
    params: { query, start: (startMs / 1000).toFixed(3), end: (endMs / 1000).toFixed(3), step: String(step) },
  });
}

/** Instant query at now. */
export function query(q) {
  return call('/api/v1/query', { params: { query: q } });
}
