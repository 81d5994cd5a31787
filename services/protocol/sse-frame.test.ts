import { describe, expect, it } from 'vitest';
import {
  PING_FRAME,
  REPLACED_ID_PREFIX,
  frameClosing,
  frameEvent,
  frameGap,
  frameReady,
  frameReplaced,
  frameRetry,
} from './sse-frame';

const ID = '01ARYZ6S41TSV4RRFFQ69G5FAV';

/** The field names of a frame's lines, in order (`id`, `event`, `data`, `retry`). */
function fieldsOf(frame: string): string[] {
  return frame
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.slice(0, line.indexOf(':')));
}

describe('frameEvent', () => {
  it('writes id, event and data lines and ends with a blank line', () => {
    expect(frameEvent({ id: ID, event: 'message', data: '{"text":"Hello 👋"}' })).toBe(
      `id: ${ID}\nevent: message\ndata: {"text":"Hello 👋"}\n\n`,
    );
  });

  it.each([
    ['id', 'LF', { id: 'a\nb', event: 'message', data: '1' }],
    ['id', 'CR', { id: 'a\rb', event: 'message', data: '1' }],
    ['event', 'LF', { id: ID, event: 'message\n', data: '1' }],
    ['event', 'CR', { id: ID, event: 'mess\rage', data: '1' }],
    ['data', 'LF', { id: ID, event: 'message', data: '{"a":1}\ndata: {"b":2}' }],
    ['data', 'CR', { id: ID, event: 'message', data: '1\r' }],
    ['data', 'CRLF', { id: ID, event: 'message', data: '1\r\n' }],
  ])('throws on a %s containing %s instead of rewriting it', (field, _kind, event) => {
    expect(() => frameEvent(event)).toThrow(`SSE ${field} must not contain CR or LF`);
  });

  it('escapes NEL, LS and PS in data, so line-splitting parsers see one data line holding the same JSON value', () => {
    const data = JSON.stringify({ text: 'a\u2028b\u2029c\u0085d' });

    const frame = frameEvent({ id: ID, event: 'message', data });

    expect(frame).toBe(`id: ${ID}\nevent: message\ndata: {"text":"a\\u2028b\\u2029c\\u0085d"}\n\n`);
    expect(frame).not.toMatch(/[\u0085\u2028\u2029]/);
    // Python's str.splitlines cuts at all three: the frame now splits only at its LFs.
    const dataLine = frame.split('\n').find((line) => line.startsWith('data: '))!;
    expect(JSON.parse(dataLine.slice('data: '.length))).toEqual(JSON.parse(data));
  });
});

describe('frameRetry', () => {
  it('writes a retry line in whole milliseconds', () => {
    expect(frameRetry(2000)).toBe('retry: 2000\n\n');
    expect(frameRetry(1234.5)).toBe('retry: 1235\n\n');
  });

  it('never writes a negative delay', () => {
    expect(frameRetry(-5)).toBe('retry: 0\n\n');
  });
});

describe('control frames', () => {
  it('ready carries the connection, node, policy and heartbeat, without an id', () => {
    const frame = frameReady({ connectionId: 'c1', nodeId: 'n1', policy: 'single', heartbeatMs: 15000 });
    expect(frame).toBe('event: ready\ndata: {"connectionId":"c1","nodeId":"n1","policy":"single","heartbeatMs":15000}\n\n');
    expect(fieldsOf(frame)).toEqual(['event', 'data']);
  });

  it('gap carries the position and reason, without an id', () => {
    const frame = frameGap(ID, 'history_trimmed');
    expect(frame).toBe(`event: gap\ndata: {"lastEventId":"${ID}","reason":"history_trimmed"}\n\n`);
    expect(fieldsOf(frame)).toEqual(['event', 'data']);
  });

  it('gap escapes NEL, LS and PS in a client-supplied position', () => {
    // A header value is read as Latin-1, so a 0x85 byte in Last-Event-ID arrives as U+0085.
    const frame = frameGap('x\u0085y\u2028z\u2029', 'unknown_position');
    expect(frame).toBe('event: gap\ndata: {"lastEventId":"x\\u0085y\\u2028z\\u2029","reason":"unknown_position"}\n\n');
  });

  it('gap keeps a hostile client-supplied position inside one data line', () => {
    const frame = frameGap('x\r\n\r\nevent: message\ndata: forged', 'unknown_position');
    expect(frame).toBe(
      'event: gap\ndata: {"lastEventId":"x\\r\\n\\r\\nevent: message\\ndata: forged","reason":"unknown_position"}\n\n',
    );
    expect(fieldsOf(frame)).toEqual(['event', 'data']);
  });

  it('closing carries the reason, without an id or retry when none is given', () => {
    const frame = frameClosing('draining');
    expect(frame).toBe('event: closing\ndata: {"reason":"draining"}\n\n');
    expect(fieldsOf(frame)).toEqual(['event', 'data']);
  });

  it('closing with a retry puts the retry first, still without an id', () => {
    const frame = frameClosing('token_expired', 3500);
    expect(frame).toBe('retry: 3500\n\nevent: closing\ndata: {"reason":"token_expired"}\n\n');
    expect(fieldsOf(frame)).toEqual(['retry', 'event', 'data']);
  });

  it('replaced is the only control frame with an id: replaced:<connectionId>', () => {
    const frame = frameReplaced('c-42');
    expect(frame).toBe('id: replaced:c-42\nevent: replaced\ndata: {"connectionId":"c-42"}\n\n');
    expect(frame.startsWith(`id: ${REPLACED_ID_PREFIX}c-42\n`)).toBe(true);
  });

  it('ping has a data line, since EventSource drops an event without data', () => {
    expect(PING_FRAME).toBe('event: ping\ndata: {}\n\n');
    expect(fieldsOf(PING_FRAME)).toEqual(['event', 'data']);
  });
});
