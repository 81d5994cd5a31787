import { describe, expect, it } from 'vitest';
import { parseBusMessage } from '../protocol/bus-message';
import { createLogger } from './log';
import { malformedMessageFacts } from './malformed-message';

const SECRET = 'payload-sentinel-7f3a';

/** Each body names the sentinel where a refusal's message or field would quote it. */
const BODIES: Record<string, string> = {
  'not JSON at all': `not json ${SECRET}`,
  'an unknown version': JSON.stringify({ v: SECRET, kind: 'drain' }),
  'an unknown version that is an object': JSON.stringify({ v: { text: SECRET }, kind: 'drain' }),
  'an unknown field on a control message': JSON.stringify({ v: 1, kind: 'drain', [SECRET]: true }),
  'an unknown field on an envelope': JSON.stringify({ to: { all: true }, event: 'message', data: {}, [SECRET]: 1 }),
  'an unknown field on one event of a batch': JSON.stringify({
    v: 1,
    kind: 'deliver',
    events: [{ id: '01M88YN7245G5BZWDGMT58CA1P', event: 'message', to: { all: true }, ttl: 0, publishedAtMs: 1, data: {}, [SECRET]: 1 }],
  }),
  'an unknown kind': JSON.stringify({ v: 1, kind: SECRET }),
  'a bad event name': JSON.stringify({ to: { all: true }, event: `${SECRET} !`, data: { text: SECRET } }),
  'a bad user id': JSON.stringify({ v: 1, kind: 'replace', userId: `${SECRET}\u0000`, connectionId: 'c1', byConnectionId: 'c2' }),
  'a bad recipient': JSON.stringify({ to: { users: ['alice', `${SECRET}\u0001`] }, event: 'message', data: { text: SECRET } }),
};

function logLineFor(body: string): { line: string; fields: Record<string, unknown> } {
  let error: unknown;
  try {
    parseBusMessage(body, {});
  } catch (caught) {
    error = caught;
  }
  expect(error, 'the body is refused').toBeDefined();
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', sink: (line) => lines.push(line) });
  log.warn('bus.message_malformed', { messageId: 'm-1', ...malformedMessageFacts(body, error) });
  const [line = ''] = lines;
  return { line, fields: JSON.parse(line) as Record<string, unknown> };
}

describe('malformedMessageFacts', () => {
  it.each(Object.entries(BODIES))('logs no byte of the publisher’s body for %s', (_name, body) => {
    const { line } = logLineFor(body);
    expect(line).not.toContain(SECRET);
    expect(line).not.toContain('payload-sentinel');
  });

  it('keeps the size, the kind, the code and a field that is Herald’s own', () => {
    const body = JSON.stringify({ v: 1, kind: 'replace', userId: `${SECRET}\u0000`, connectionId: 'c1', byConnectionId: 'c2' });
    const { fields } = logLineFor(body);
    expect(fields).toEqual({
      ts: expect.any(String) as string,
      level: 'warn',
      event: 'bus.message_malformed',
      messageId: 'm-1',
      bytes: Buffer.byteLength(body),
      kind: 'replace',
      code: 'envelope_invalid',
      field: 'userId',
    });
  });

  it('says a field was unknown without naming it, and keeps the index of the event in a batch', () => {
    const { fields } = logLineFor(BODIES['an unknown field on one event of a batch']!);
    expect(fields).toMatchObject({ kind: 'deliver', code: 'envelope_invalid', unknownField: true, index: 0 });
    expect(fields).not.toHaveProperty('field');
  });

  it('names a plain envelope and a recipient by position, and no kind for a body that is not JSON', () => {
    expect(logLineFor(BODIES['a bad recipient']!).fields).toMatchObject({ kind: 'envelope', code: 'recipients_invalid', field: 'to.users[1]' });
    const notJson = logLineFor(BODIES['not JSON at all']!).fields;
    expect(notJson).toMatchObject({ code: 'json_invalid' });
    expect(notJson).not.toHaveProperty('kind');
    expect(logLineFor(BODIES['an unknown kind']!).fields).not.toHaveProperty('kind');
  });

  it('logs only the name of an error that is not a refusal', () => {
    expect(malformedMessageFacts('{}', new TypeError(`boom ${SECRET}`))).toEqual({ bytes: 2, kind: 'envelope', code: 'internal', errorName: 'TypeError' });
  });
});
