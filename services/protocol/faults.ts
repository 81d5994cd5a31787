import { HeraldError } from './errors';

/**
 * A backing service (bus, table) failed in a way a retry may fix. Adapters wrap
 * SDK and network errors with this so callers never see an adapter's own types.
 */
export function unavailable(message: string, cause?: unknown, retryAfterMs = 1000): HeraldError {
  return new HeraldError('unavailable', message, { cause, retryAfterMs });
}
