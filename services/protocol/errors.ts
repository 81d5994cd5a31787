/**
 * Every refusal Herald makes, as a stable snake_case code. Clients and publishers
 * branch on the code; the message is for humans and may change.
 */
export type ErrorCode =
  | 'token_missing'
  | 'token_invalid'
  | 'token_expired'
  | 'token_ambiguous'
  | 'publisher_unauthorized'
  | 'identity_in_url'
  | 'fetch_dest_refused'
  | 'dev_loopback_only'
  | 'bad_request'
  | 'json_invalid'
  | 'envelope_invalid'
  | 'event_name_invalid'
  | 'event_name_reserved'
  | 'event_id_invalid'
  | 'event_id_out_of_range'
  | 'recipients_invalid'
  | 'too_many_recipients'
  | 'ttl_invalid'
  | 'batch_invalid'
  | 'payload_too_large'
  | 'body_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'too_many_connects'
  | 'too_many_streams'
  | 'too_many_tabs'
  | 'not_found'
  | 'method_not_allowed'
  | 'node_full'
  | 'draining'
  | 'unavailable'
  | 'internal';

/** The HTTP status of each code; the one place where that mapping lives. */
export const httpStatus: Readonly<Record<ErrorCode, number>> = {
  token_missing: 401,
  token_invalid: 401,
  token_expired: 401,
  token_ambiguous: 401,
  publisher_unauthorized: 401,
  identity_in_url: 400,
  fetch_dest_refused: 403,
  dev_loopback_only: 403,
  bad_request: 400,
  json_invalid: 400,
  envelope_invalid: 400,
  event_name_invalid: 400,
  event_name_reserved: 400,
  event_id_invalid: 400,
  event_id_out_of_range: 400,
  recipients_invalid: 400,
  too_many_recipients: 400,
  ttl_invalid: 400,
  batch_invalid: 400,
  payload_too_large: 413,
  body_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  too_many_connects: 429,
  too_many_streams: 429,
  too_many_tabs: 429,
  not_found: 404,
  method_not_allowed: 405,
  node_full: 503,
  draining: 503,
  unavailable: 503,
  internal: 500,
};

export interface HeraldErrorDetails {
  /** Sent as `Retry-After` (rounded up to whole seconds) on HTTP refusals. */
  readonly retryAfterMs?: number;
  /** The offending field, e.g. `to.users[3]`, so a publisher can find its mistake. */
  readonly field?: string;
  /** Index of the offending notification in a batch. */
  readonly index?: number;
  /**
   * With a fault part-way through a publish: the ids of its notifications, in
   * order, given or minted. A retry with these ids is not stored twice; one
   * without gets new ids and is.
   */
  readonly ids?: readonly string[];
  readonly cause?: unknown;
}

export class HeraldError extends Error {
  override readonly name = 'HeraldError';
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: HeraldErrorDetails = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.status = httpStatus[code];
  }

  /** The JSON body a client sees. Never includes `cause`: internals stay in the logs. */
  toJSON(): { error: ErrorCode; message: string; field?: string; index?: number; retryAfterMs?: number; ids?: readonly string[] } {
    const { field, index, retryAfterMs, ids } = this.details;
    return {
      error: this.code,
      message: this.message,
      ...(field === undefined ? {} : { field }),
      ...(index === undefined ? {} : { index }),
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      ...(ids === undefined ? {} : { ids }),
    };
  }
}

/** `error` with `details.ids` set: a publish fault names the ids to retry with. Anything else is returned as it is. */
export function withIds(error: unknown, ids: readonly string[]): unknown {
  if (!(error instanceof HeraldError) || error.status < 500) return error;
  return new HeraldError(error.code, error.message, { ...error.details, ids });
}

export function isHeraldError(value: unknown): value is HeraldError {
  return value instanceof HeraldError;
}
