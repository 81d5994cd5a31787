import { describe, expect, it } from 'vitest';
import { HeraldError, httpStatus, isHeraldError, type ErrorCode } from './errors';
import { unavailable } from './faults';

const EXPECTED_STATUS: Readonly<Record<ErrorCode, number>> = {
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

const CODES = Object.keys(EXPECTED_STATUS) as ErrorCode[];

describe('httpStatus', () => {
  it('maps every code to its documented status', () => {
    expect(httpStatus).toEqual(EXPECTED_STATUS);
  });

  it.each(CODES)('gives %s an HTTP error status', (code) => {
    const status = httpStatus[code];
    expect(Number.isInteger(status) && status >= 400 && status <= 599).toBe(true);
  });
});

describe('HeraldError', () => {
  it.each(CODES)('takes the status of %s from the one mapping', (code) => {
    expect(new HeraldError(code, 'x').status).toBe(EXPECTED_STATUS[code]);
  });

  it('is an Error named HeraldError with its code, message and details', () => {
    const error = new HeraldError('ttl_invalid', 'bad ttl', { field: 'ttl' });
    expect(error).toBeInstanceOf(Error);
    expect([error.name, error.code, error.message, error.details]).toEqual(['HeraldError', 'ttl_invalid', 'bad ttl', { field: 'ttl' }]);
    expect(isHeraldError(error)).toBe(true);
    expect(isHeraldError(new Error('x'))).toBe(false);
    expect(isHeraldError({ code: 'ttl_invalid' })).toBe(false);
  });

  it('keeps a cause for the logs', () => {
    const cause = new Error('ECONNREFUSED 10.0.0.7:8000');
    const error = new HeraldError('unavailable', 'the table is unavailable', { cause });
    expect(error.cause).toBe(cause);
  });

  it('toJSON never exposes the cause', () => {
    const cause = new Error('secret internal detail');
    const error = new HeraldError('unavailable', 'try again', { cause, retryAfterMs: 1500 });
    expect(error.toJSON()).toEqual({ error: 'unavailable', message: 'try again', retryAfterMs: 1500 });
    expect(JSON.stringify(error)).toBe('{"error":"unavailable","message":"try again","retryAfterMs":1500}');
    expect(JSON.stringify(error)).not.toContain('secret');
  });

  it('toJSON includes field and index when given, and only then', () => {
    expect(new HeraldError('bad_request', 'm').toJSON()).toEqual({ error: 'bad_request', message: 'm' });
    expect(new HeraldError('recipients_invalid', 'm', { field: 'to.users[0]', index: 0 }).toJSON()).toEqual({
      error: 'recipients_invalid',
      message: 'm',
      field: 'to.users[0]',
      index: 0,
    });
  });

  it('toJSON keeps an empty field and a zero retry, which are values, not absences', () => {
    expect(new HeraldError('envelope_invalid', 'm', { field: '', retryAfterMs: 0 }).toJSON()).toEqual({
      error: 'envelope_invalid',
      message: 'm',
      field: '',
      retryAfterMs: 0,
    });
  });
});

describe('unavailable', () => {
  it('is a 503 unavailable error with the cause and a one-second retry by default', () => {
    const cause = new Error('socket hang up');
    const error = unavailable('the bus is unavailable', cause);
    expect([error.code, error.status, error.details.retryAfterMs, error.cause]).toEqual(['unavailable', 503, 1000, cause]);
    expect(error.toJSON()).toEqual({ error: 'unavailable', message: 'the bus is unavailable', retryAfterMs: 1000 });
  });

  it('takes a retry delay', () => {
    expect(unavailable('x', undefined, 250).details.retryAfterMs).toBe(250);
  });
});
