/**
 * The publisher library for any shape: publishes through a node's
 * `POST /publish` (or the load balancer in front of the nodes) with nothing
 * but the publisher token, where `createPublisher` needs IAM rights on the
 * AWS shape's topic and table. Same `Publisher` interface, same validation
 * (`parseEnvelope` / `parsePublishBody`, before anything is sent), same
 * results and the same `HeraldError` codes, so code written against one runs
 * against the other.
 *
 * Retries are safe because the ids are minted here: an envelope without an
 * `id` gets one at validation, and every attempt of a call sends the very same
 * body, so when an attempt's fate is unknown (the connection was reset, the
 * load balancer answered 502, the node answered 503 part-way through a batch)
 * the next one is deduplicated by the node instead of stored twice.
 */
import { Backoff, parseRetryAfter } from '../client/backoff';
import { parseEnvelope, parsePublishBody, type HeraldEvent } from '../protocol/envelope';
import { HeraldError, httpStatus, withIds, type ErrorCode, type HeraldErrorDetails } from '../protocol/errors';
import { DEFAULT_MAX_DATA_BYTES, MAX_DATA_BYTES_CEILING } from '../protocol/limits';
import { isPlainObject } from '../protocol/notification-fields';
import { silentLogger, type Logger } from '../shared/log';
import type { Publisher } from './create-publisher';
import type { PublishResult } from './publish';
import type { RetryPolicy } from './retrying-publish';

export interface HttpPublisherOptions {
  /** The node's base URL (`http://127.0.0.1:8080`), or its load balancer's; `/publish` is appended to its path. */
  readonly url: string;
  /** The nodes' `HERALD_PUBLISH_TOKEN`, sent as `Authorization: Bearer`. */
  readonly token: string;
  /**
   * The nodes' `HERALD_MAX_DATA_BYTES`: data over it is refused here, before
   * it is sent (the node checks again with its own setting).
   * @default 65536 (the nodes' default)
   */
  readonly maxDataBytes?: number;
  /** Attempts per call and the pauses between them. @default HTTP_RETRY */
  readonly retry?: RetryPolicy;
  /** Deadline of one attempt, answer included; past it the attempt counts as a transient failure. @default 10000 */
  readonly timeoutMs?: number;
  /** Where retries are reported (`publish.retrying`). @default silent */
  readonly log?: Logger;
}

/**
 * Four attempts with 0.7–1.4 s of pauses between them in all (3 s when the
 * node's `Retry-After` asks for 1 s each): long enough to ride out a node
 * restarting behind its load balancer, short enough that a caller waiting on
 * the answer is not held for long.
 */
export const HTTP_RETRY: RetryPolicy = { attempts: 4, firstDelayMs: 200, maxDelayMs: 2_000 };

const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Answers worth another attempt with the same body. `unavailable`: a backing
 * service failed (in a batch, part-way: those before `index` were published,
 * and the retry's duplicates are not stored again). `draining`: the node is
 * stopping; behind a load balancer the next attempt reaches another.
 * `rate_limited` is not among them: like `createPublisher`, the caller gets it
 * at once with `retryAfterMs`, because waiting inside the library would only
 * pile up calls behind a budget that is already spent.
 */
const TRANSIENT_CODES: ReadonlySet<ErrorCode> = new Set(['unavailable', 'draining']);

/** Statuses a load balancer or proxy answers itself while the nodes behind it restart or are overloaded. */
const GATEWAY_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);

export function createHttpPublisher(options: HttpPublisherOptions): Publisher {
  const endpoint = publishEndpoint(options.url);
  const { token } = options;
  // The node reads the token as one run of non-space characters; anything else could never match it.
  if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) throw new RangeError('token must be the HERALD_PUBLISH_TOKEN string (printable ASCII, no spaces)');
  const maxDataBytes = options.maxDataBytes ?? DEFAULT_MAX_DATA_BYTES;
  if (!Number.isInteger(maxDataBytes) || maxDataBytes < 1 || maxDataBytes > MAX_DATA_BYTES_CEILING) {
    throw new RangeError(`maxDataBytes must be a whole number from 1 to ${MAX_DATA_BYTES_CEILING}, got ${maxDataBytes}`);
  }
  const retry = options.retry ?? HTTP_RETRY;
  if (!Number.isInteger(retry.attempts) || retry.attempts < 1) throw new RangeError(`retry.attempts must be a whole number of at least 1, got ${retry.attempts}`);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${timeoutMs}`);
  const log = options.log ?? silentLogger;
  const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', Accept: 'application/json' };

  /** One attempt: the node's answer, or why there was none. */
  async function attempt(body: string): Promise<{ readonly ok: true; readonly body: unknown } | { readonly ok: false; readonly error: HeraldError; readonly transient: boolean }> {
    let status: number;
    let retryAfter: string | null;
    let text: string;
    try {
      const response = await fetch(endpoint, { method: 'POST', headers, body, signal: AbortSignal.timeout(timeoutMs) });
      status = response.status;
      retryAfter = response.headers.get('retry-after');
      text = await response.text();
    } catch (error) {
      // No answer (refused, reset, timed out): it may or may not have been published, which the same ids make safe to retry.
      return { ok: false, transient: true, error: new HeraldError('unavailable', `POST ${endpoint.href} got no answer: ${describeFailure(error, timeoutMs)}`, { cause: error }) };
    }
    const json = parseJson(text);
    if (status >= 200 && status < 300) {
      if (json === undefined) return { ok: false, transient: false, error: unexpectedAnswer(endpoint, `HTTP ${status} with a body that is not JSON`) };
      return { ok: true, body: json };
    }
    return refusal(endpoint, status, parseRetryAfter(retryAfter, Date.now()), json);
  }

  async function send(events: readonly HeraldEvent[], inputs: readonly unknown[], batch: boolean): Promise<PublishResult[]> {
    const wire = events.map((event, i) => wireEnvelope(event, inputs[i]));
    // Built once: every attempt sends these exact bytes, ids included.
    const body = batch ? `{"notifications":[${wire.join(',')}]}` : wire[0]!;
    const backoff = new Backoff(Math.random, { initialMs: retry.firstDelayMs, maxMs: retry.maxDelayMs });
    for (let n = 1; ; n++) {
      const outcome = await attempt(body);
      if (outcome.ok) return readResults(endpoint, outcome.body, events, batch, n > 1);
      // Its fate unknown, a caller that gave no ids could not retry without storing it twice: name them.
      if (!outcome.transient || n >= retry.attempts) throw withIds(outcome.error, events.map((e) => e.id));
      // The node's Retry-After, when it gives one, is a floor; capped, so one call never waits long on a hint.
      const pauseMs = Math.max(backoff.next(), Math.min(outcome.error.details.retryAfterMs ?? 0, retry.maxDelayMs));
      const { index } = outcome.error.details;
      log.warn('publish.retrying', { url: endpoint.href, attempt: n, notifications: events.length, code: outcome.error.code, pauseMs: Math.round(pauseMs), ...(index === undefined ? {} : { index }), error: outcome.error.message });
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }

  let closed = false;
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(call: Promise<T>): Promise<T> => {
    inFlight.add(call);
    const forget = (): void => {
      inFlight.delete(call);
    };
    call.then(forget, forget);
    return call;
  };
  const guard = (): void => {
    if (closed) throw new Error('this publisher is closed');
  };

  return {
    publish: async (envelope) => {
      guard();
      const event = parseEnvelope(envelope, { maxDataBytes });
      const [result] = await track(send([event], [envelope], false));
      return result!;
    },
    publishBatch: async (envelopes) => {
      guard();
      const events = parsePublishBody({ notifications: envelopes }, { maxDataBytes });
      return track(send(events, envelopes, true));
    },
    close: async () => {
      closed = true;
      // Nothing to release (fetch pools its own connections): let calls under way finish, retries included.
      await Promise.allSettled([...inFlight]);
    },
  };
}

function publishEndpoint(url: string): URL {
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new RangeError(`url must be an absolute http(s) URL such as http://127.0.0.1:8080, got ${JSON.stringify(url)}`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new RangeError(`url must be http or https, got ${base.protocol}`);
  if (base.search !== '' || base.hash !== '') throw new RangeError('url is the base URL of the node, without a query or fragment');
  // A base with a path (a node mounted under /herald behind a proxy) keeps it.
  return new URL(`${base.pathname.replace(/\/+$/, '')}/publish`, base);
}

/**
 * One envelope as sent: the validated fields, so what was checked is what
 * goes out. `data` is already serialized JSON (its size is the checked one)
 * and goes in verbatim; `ttl` only when the caller gave one, so the node's own
 * `HERALD_HISTORY_TTL_SECONDS` applies otherwise.
 */
function wireEnvelope(event: HeraldEvent, input: unknown): string {
  const ttl = isPlainObject(input) && input.ttl !== undefined ? `,"ttl":${event.ttlSeconds}` : '';
  return `{"id":${JSON.stringify(event.id)},"to":${JSON.stringify(event.to)},"event":${JSON.stringify(event.event)},"data":${event.data}${ttl}}`;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(httpStatus, value);
}

/** A refusal as the `HeraldError` the node threw: its code, message, `field`, `index` and `retryAfterMs`. */
function refusal(endpoint: URL, status: number, headerRetryAfterMs: number | undefined, body: unknown): { readonly ok: false; readonly error: HeraldError; readonly transient: boolean } {
  if (isPlainObject(body) && isErrorCode(body.error)) {
    const { field, index, retryAfterMs } = body;
    const details: HeraldErrorDetails = {
      ...(typeof field === 'string' ? { field } : {}),
      ...(typeof index === 'number' && Number.isInteger(index) ? { index } : {}),
      ...(typeof retryAfterMs === 'number' ? { retryAfterMs } : headerRetryAfterMs === undefined ? {} : { retryAfterMs: headerRetryAfterMs }),
    };
    const message = typeof body.message === 'string' ? body.message : `HTTP ${status}`;
    return { ok: false, error: new HeraldError(body.error, message, details), transient: TRANSIENT_CODES.has(body.error) };
  }
  // Not a Herald answer: a load balancer or proxy in between, or something else at that URL.
  const code = codeOfStatus(status);
  const details: HeraldErrorDetails = headerRetryAfterMs === undefined ? {} : { retryAfterMs: headerRetryAfterMs };
  return { ok: false, error: new HeraldError(code, `POST ${endpoint.href} answered HTTP ${status} without a Herald error body`, details), transient: GATEWAY_STATUSES.has(status) };
}

/** The code of a status when the body names none: the nearest Herald refusal, so callers branch on codes alone. */
function codeOfStatus(status: number): ErrorCode {
  if (GATEWAY_STATUSES.has(status)) return 'unavailable';
  switch (status) {
    case 401:
    case 403:
      return 'publisher_unauthorized';
    case 404:
      return 'not_found';
    case 405:
      return 'method_not_allowed';
    case 413:
      return 'body_too_large';
    case 415:
      return 'unsupported_media_type';
    case 429:
      return 'rate_limited';
    default:
      return status >= 400 && status < 500 ? 'bad_request' : 'internal';
  }
}

function describeFailure(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && error.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  if (!(error instanceof Error)) return String(error);
  // fetch says only "fetch failed"; the reason (ECONNRESET, ECONNREFUSED, UND_ERR_SOCKET) is on its cause.
  const cause: unknown = error.cause;
  const code = isPlainObject(cause) && typeof cause.code === 'string' ? cause.code : cause instanceof Error ? cause.message : undefined;
  return code === undefined ? error.message : `${error.message} (${code})`;
}

function unexpectedAnswer(endpoint: URL, what: string): HeraldError {
  return new HeraldError('internal', `POST ${endpoint.href} answered ${what}; is the URL a Herald node?`);
}

/**
 * The answer's results, checked against what was sent: one per notification,
 * in order, with the ids sent. A 2xx that is not that is not Herald's answer
 * (the notifications may still have been published; the ids tell).
 */
function readResults(endpoint: URL, body: unknown, events: readonly HeraldEvent[], batch: boolean, retried: boolean): PublishResult[] {
  const list: unknown = batch ? (isPlainObject(body) ? body.results : undefined) : [body];
  if (!Array.isArray(list) || list.length !== events.length) throw unexpectedAnswer(endpoint, `a body without ${events.length} result(s)`);
  return events.map((event, i) => {
    const result = readResult(list[i]);
    if (result === undefined || result.id !== event.id) throw unexpectedAnswer(endpoint, `a result ${i} that is not the one for id ${event.id}`);
    // An id minted by this call was never sent before it: "already stored" can only mean an earlier attempt of this very call stored it.
    return retried && event.minted === true && result.duplicate ? { ...result, duplicate: false } : result;
  });
}

function readResult(value: unknown): PublishResult | undefined {
  if (!isPlainObject(value)) return undefined;
  const { id, recipients, online, offline, duplicate } = value;
  if (typeof id !== 'string' || typeof duplicate !== 'boolean') return undefined;
  if (!(recipients === 'all' || (typeof recipients === 'number' && Number.isInteger(recipients) && recipients >= 0))) return undefined;
  if (!(online === null || (typeof online === 'number' && Number.isInteger(online) && online >= 0))) return undefined;
  if (!Array.isArray(offline) || !offline.every((user): user is string => typeof user === 'string')) return undefined;
  // A fresh object with exactly the documented fields: whatever else an answer carries stays out of the caller's type.
  return { id, recipients, online, offline: [...offline], duplicate };
}
