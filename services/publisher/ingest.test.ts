import { describe, expect, it } from 'vitest';
import { eventIdTimeMs, isEventId } from '../protocol/event-id';
import { ingestEventId, isIngestEvent, withStableIds, type IngestRecord } from './ingest';

const record = (messageId = 'm-1', sentAtMs = 1_767_225_600_000): IngestRecord => ({
  messageId,
  body: '{}',
  eventSource: 'aws:sqs',
  attributes: { SentTimestamp: String(sentAtMs) },
});

describe('ingestEventId', () => {
  it('is a valid event id of the time SQS received the message, the same on every delivery', () => {
    const id = ingestEventId(record(), 0);
    expect(isEventId(id)).toBe(true);
    expect(eventIdTimeMs(id)).toBe(1_767_225_600_000);
    expect(ingestEventId(record(), 0)).toBe(id);
  });

  it('differs between the notifications of a message and between messages', () => {
    const ids = new Set([ingestEventId(record('m-1'), 0), ingestEventId(record('m-1'), 1), ingestEventId(record('m-2'), 0)]);
    expect(ids.size).toBe(3);
  });
});

describe('withStableIds', () => {
  it('gives an id to each notification that has none, and keeps the ones given', () => {
    const r = record();
    expect(withStableIds({ to: { all: true }, event: 'e', data: 1 }, r)).toEqual({ to: { all: true }, event: 'e', data: 1, id: ingestEventId(r, 0) });
    const given = '01M88YN7245G5BZWDGMT58CA1P';
    expect(withStableIds({ notifications: [{ id: given, event: 'a' }, { event: 'b' }, 'not an envelope'], publisher: 'billing' }, r)).toEqual({
      notifications: [{ id: given, event: 'a' }, { event: 'b', id: ingestEventId(r, 1) }, 'not an envelope'],
      publisher: 'billing',
    });
  });

  it('leaves what is not a publish body to validation', () => {
    expect(withStableIds('text', record())).toBe('text');
    expect(withStableIds({ notifications: 'x' }, record())).toEqual({ notifications: 'x' });
  });
});

describe('isIngestEvent', () => {
  it('tells a batch of the ingest queue from a publish body', () => {
    expect(isIngestEvent({ Records: [record()] })).toBe(true);
    expect(isIngestEvent({ Records: [] })).toBe(true);
    expect(isIngestEvent({ Records: [{ ...record(), eventSource: 'aws:sns' }] })).toBe(false);
    expect(isIngestEvent({ to: { all: true }, event: 'e', data: 1 })).toBe(false);
    expect(isIngestEvent(null)).toBe(false);
  });
});
