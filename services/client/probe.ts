import { parseRetryAfter } from './backoff';
import type { ClientEnvironment } from './environment';

export type ProbeResult =
  /** 401: the credentials are missing or expired. */
  | { readonly kind: 'unauthorized' }
  /** Any other refusal; 503 and 429 carry `Retry-After`. */
  | { readonly kind: 'refused'; readonly status: number; readonly retryAfterMs: number | undefined }
  /** 200: a stream would open now. */
  | { readonly kind: 'available' }
  /** No HTTP answer at all (offline, DNS, connection refused, timeout). */
  | { readonly kind: 'network' };

/**
 * Asks the stream URL for its status. `EventSource` cannot: a refused stream
 * only fires `error` with `readyState` CLOSED, whether the answer was 401, 503
 * or no answer. A `fetch` of the same URL with the same credentials and
 * `Accept: application/json` is a status check: the server answers the same
 * refusals, or 200 without opening a stream or claiming the tab.
 */
export async function probeStream(env: ClientEnvironment, url: string, withCredentials: boolean, timeoutMs = 10_000): Promise<ProbeResult> {
  const controller = new AbortController();
  const timer = env.setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await env.fetch(url, {
      headers: { Accept: 'application/json' },
      credentials: withCredentials ? 'include' : 'same-origin',
      cache: 'no-store',
      signal: controller.signal,
    });
    response.body?.cancel().catch(() => undefined);
    controller.abort();
    if (response.status === 401) return { kind: 'unauthorized' };
    if (response.status === 200) return { kind: 'available' };
    return { kind: 'refused', status: response.status, retryAfterMs: parseRetryAfter(response.headers.get('retry-after'), Date.now()) };
  } catch {
    return { kind: 'network' };
  } finally {
    env.clearTimeout(timer);
  }
}
