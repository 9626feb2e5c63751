// The management API from the browser: same origin, JSON, the function key (Azure) as x-functions-key.
// The key lives in this tab's sessionStorage only; it is never written into the page.

const KEY_STORE = 'mdf.functionKey';
const base = document.querySelector('meta[name="mdf-base"]')?.getAttribute('content') || '/api/console';
/** The API root next to the console page (`/api`). */
export const apiRoot = base.replace(/\/console$/, '');

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function functionKey() {
  try {
    return sessionStorage.getItem(KEY_STORE) || '';
  } catch {
    return '';
  }
}

export function setFunctionKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORE, key);
    else sessionStorage.removeItem(KEY_STORE);
  } catch {
    // storage disabled: the key is not kept
  }
}

/** `path` is relative to the API root (`/runs`); path segments from data must be encoded by the caller (`seg`). */
export async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  const key = functionKey();
  if (key) headers['x-functions-key'] = key;
  const init = { method, headers, cache: 'no-store', credentials: 'same-origin' };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(apiRoot + path, init);
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    const err = data && data.error;
    throw new ApiError(res.status, (err && err.code) || `Http${res.status}`, (err && err.message) || text.slice(0, 300) || res.statusText);
  }
  return data;
}

/** One path segment from data (a name, a run id), encoded. */
export const seg = (s) => encodeURIComponent(String(s));
