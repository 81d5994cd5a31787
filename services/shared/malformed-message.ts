/**
 * What may be logged about a message that could not be read: one on the bus,
 * or one on the ingest queue (services/publisher/lambda.ts). Whoever published
 * it chose every byte of the body, and the refusal's message
 * quotes some of them (`unknown version "…"`, `unknown field "…"`), as does the
 * stack of the error that carries it. So only facts Herald itself chose are
 * kept: the size, the kind when the body names a known one, the refusal's code,
 * and its field when the field is one of Herald's own names.
 */
import { isHeraldError } from '../protocol/errors';
import { utf8Length } from '../protocol/utf8';
import type { LogFields } from './log';

/** Every field a bus message, an envelope or a publish body has; anything else a refusal names is the publisher's word. */
const HERALD_FIELDS: ReadonlySet<string> = new Set([
  '',
  'v',
  'kind',
  'events',
  'id',
  'event',
  'data',
  'to',
  'to.users',
  'ttl',
  'publishedAtMs',
  'userId',
  'connectionId',
  'byConnectionId',
  'reclaim',
  'nonce',
  'node',
  // A publish body (the ingest queue's messages): a batch, and the rate budget it names.
  'notifications',
  'publisher',
]);
const RECIPIENT_FIELD = /^to\.users\[\d{1,4}\]$/;
const KINDS: ReadonlySet<string> = new Set(['deliver', 'replace', 'drain', 'probe']);

/** `kind` as the body names it when it is one Herald knows, `envelope` for a plain envelope, else nothing. */
function kindOf(body: string): string | undefined {
  let input: unknown;
  try {
    input = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return undefined;
  if (!('v' in input)) return 'envelope';
  const { kind } = input as { kind?: unknown };
  return typeof kind === 'string' && KINDS.has(kind) ? kind : undefined;
}

/** The fields of a `bus.message_malformed` line: never the body, the refusal's message or its stack. */
export function malformedMessageFacts(body: string, error: unknown): LogFields {
  const kind = kindOf(body);
  const facts: Record<string, unknown> = { bytes: utf8Length(body), ...(kind === undefined ? {} : { kind }) };
  if (!isHeraldError(error)) return { ...facts, code: 'internal', errorName: error instanceof Error ? error.name : typeof error };
  const { field, index } = error.details;
  facts.code = error.code;
  if (field !== undefined) {
    if (HERALD_FIELDS.has(field) || RECIPIENT_FIELD.test(field)) facts.field = field;
    else facts.unknownField = true;
  }
  if (index !== undefined) facts.index = index;
  return facts;
}
