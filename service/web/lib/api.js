// Server-side client for bitvaultd's readiness endpoint, shared by the page and the BFF route.

const DEFAULT_API_URL = 'http://127.0.0.1:8080';
const TIMEOUT_MS = 2000;

/** The base URL of bitvaultd, without a trailing slash. */
export function apiBaseURL() {
  return (process.env.BITVAULT_API_URL || DEFAULT_API_URL).replace(/\/+$/, '');
}

/**
 * Calls bitvaultd's /readyz with a short timeout. It never throws: when bitvaultd cannot be
 * reached the result says so with reachable:false.
 * @returns {Promise<{reachable: boolean, status: number|null, body: unknown}>}
 */
export async function apiReadiness() {
  const url = `${apiBaseURL()}/readyz`;
  try {
    const res = await fetch(url, {
      cache: 'no-store',
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    const text = await res.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { reachable: true, status: res.status, body };
  } catch (err) {
    let reason;
    if (err && err.name === 'TimeoutError') {
      reason = `timeout after ${TIMEOUT_MS}ms`;
    } else {
      // fetch wraps the network error; its cause carries the useful code (ECONNREFUSED, ...).
      const cause = err && err.cause;
      reason = String((cause && (cause.code || cause.message)) || (err && err.message) || err);
    }
    return { reachable: false, status: null, body: { error: reason } };
  }
}
