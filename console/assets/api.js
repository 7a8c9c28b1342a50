// The JSON API client: every call carries the bearer token kept in this
// tab's sessionStorage, and goes to the API mounted one level above the
// console's assets (the page is served at the API prefix's root).

const TOKEN_KEY = 'hookgate.token';

export const apiBase = new URL('../', import.meta.url);

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

export function setToken(t) {
  if (t) {
    sessionStorage.setItem(TOKEN_KEY, t);
  } else {
    sessionStorage.removeItem(TOKEN_KEY);
  }
}

// ApiError is a failed call: status and the API's error message.
export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

let onUnauthorized = () => {};
let serverOffset = null;

// serverNow is the gateway's clock as its last answer told it (to the
// second), or the browser's before the first answer: time windows are
// asked in the gateway's time.
export function serverNow() {
  return Date.now() + (serverOffset ?? 0);
}

// serverKnown says whether serverNow has the gateway's clock.
export function serverKnown() {
  return serverOffset !== null;
}

// whenUnauthorized sets what happens on a 401 (back to sign-in).
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}

// call makes an API request. body: an object sent as JSON, or
// {raw: string, type: content type} sent as is. Answers the decoded JSON
// (null for 204).
export async function call(method, path, body, opts = {}) {
  const headers = { Authorization: 'Bearer ' + (opts.token ?? token()) };
  let payload;
  if (body !== undefined && body !== null) {
    if (typeof body.raw === 'string') {
      payload = body.raw;
      headers['Content-Type'] = body.type || 'application/json';
    } else {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
  }
  const resp = await fetch(new URL(path.replace(/^\//, ''), apiBase), {
    method, headers, body: payload, cache: 'no-store', credentials: 'omit', redirect: 'error',
  });
  const date = Date.parse(resp.headers.get('Date') || '');
  if (!isNaN(date)) {
    serverOffset = date - Date.now();
  }
  let data = null;
  const text = await resp.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text };
    }
  }
  if (!resp.ok) {
    if (resp.status === 401 && !opts.token) {
      onUnauthorized();
    }
    throw new ApiError(resp.status, (data && data.error) || resp.statusText, data);
  }
  return data;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body);
export const patch = (path, body) => call('PATCH', path, body);

// query builds "?a=b&…" from the set values of params.
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') {
      q.set(k, v);
    }
  }
  const s = q.toString();
  return s ? '?' + s : '';
}
