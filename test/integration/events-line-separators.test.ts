import { describe, expect, it } from 'vitest';
import { startTestNode } from '../support/start-node';
import { connect, sentinel } from '../support/publish-kit';

/** NEL, LS and PS: not line ends to SSE, but Python's str.splitlines (and others) split there. */
const SEPARATORS = /[\u0085\u2028\u2029]/;
const text = (n: number): string => `line ${n}\u2028paragraph\u2029next\u0085end`;

/**
 * The stream's text as a line-splitting parser reads it (Python's str.splitlines
 * cuts at these, control characters included): every `data:` line must be whole JSON.
 */
// eslint-disable-next-line no-control-regex
const SPLITLINES = /\r\n|[\n\r\v\f\x1c-\x1e\u0085\u2028\u2029]/;

function splitlinesData(raw: string): unknown[] {
  return raw
    .split(SPLITLINES)
    .filter((line) => line.startsWith('data: '))
    .map((line) => JSON.parse(line.slice('data: '.length)) as unknown);
}

describe('GET /events: Unicode line separators in data', () => {
  it('escapes U+2028, U+2029 and U+0085 on every path that writes data: live, batch and replay', async () => {
    const node = await startTestNode();
    const live = await connect(node, 'alice');

    const single = await node.publish({ to: { users: ['alice'] }, event: 'message', data: { text: text(1) } });
    const batch = await node.publish({ notifications: [2, 3].map((n) => ({ to: { users: ['alice'] }, event: 'message', data: { text: text(n) } })) });
    expect(single.status).toBe(202);
    expect(batch.status).toBe(202);
    await sentinel(node, ['alice'], [live]);
    const replay = await connect(node, 'alice', { lastEventId: String(single.body.id), label: 'alice, replaying' });
    await replay.waitFor((e) => e.data.includes('"n":'), 'the sentinel, replayed');

    for (const [stream, expected] of [
      [live, [1, 2, 3]],
      [replay, [2, 3]],
    ] as const) {
      expect(stream.text).not.toMatch(SEPARATORS);
      // The same JSON values reach a browser's EventSource and a line-splitting parser alike.
      expect(stream.notifications().filter((e) => e.event === 'message').map((e) => JSON.parse(e.data) as unknown)).toEqual(expected.map((n) => ({ text: text(n) })));
      expect(splitlinesData(stream.text).filter((d) => typeof d === 'object' && d !== null && 'text' in d)).toEqual(expected.map((n) => ({ text: text(n) })));
    }
  });

  it('escapes them in a gap that echoes a client-supplied position', async () => {
    const node = await startTestNode();
    const position = 'not-an-id\u2028\u0085';

    const stream = await connect(node, 'alice', { query: { lastEventId: position } });
    const gap = await stream.next('gap');

    expect(JSON.parse(gap.data)).toEqual({ lastEventId: position, reason: 'unknown_position' });
    expect(stream.text).not.toMatch(SEPARATORS);
  });
});
