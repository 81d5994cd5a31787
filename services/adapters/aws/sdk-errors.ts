import { HeraldError } from '../../protocol/errors';

/** Error names the AWS services use for throttling and passing trouble. */
const TRANSIENT_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'ProvisionedThroughputExceededException',
  'RequestThrottled',
  'RequestThrottledException',
  'LimitExceededException',
  'InternalServerError',
  'InternalFailure',
  'InternalError',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'KMSThrottlingException',
  'TransactionConflictException',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
]);

/** Node network failures: the service may be back in a moment. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET']);

interface SdkLikeError {
  readonly name?: unknown;
  readonly code?: unknown;
  readonly $metadata?: { readonly httpStatusCode?: number };
  readonly $retryable?: unknown;
}

/** Whether a retry may succeed: throttling, a 5xx, a dropped connection. */
export function isTransient(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as SdkLikeError;
  if (e.$retryable !== undefined) return true;
  if (typeof e.name === 'string' && TRANSIENT_NAMES.has(e.name)) return true;
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return true;
  const status = e.$metadata?.httpStatusCode;
  return status !== undefined && status >= 500;
}

/**
 * Turns an SDK failure into what the ports promise: a transient fault becomes
 * `unavailable` (callers retry; HTTP answers 503), anything else a plain Error
 * (a bug or a misconfiguration: access denied, a missing table). Both keep the
 * SDK error as `cause` for the logs; no AWS type crosses a port.
 */
export function wrapSdkError(error: unknown, operation: string): Error {
  if (error instanceof HeraldError) return error;
  if (isTransient(error)) return new HeraldError('unavailable', `${operation} failed; retry`, { cause: error, retryAfterMs: 1000 });
  return new Error(`${operation} failed`, { cause: error });
}
