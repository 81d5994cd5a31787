import { describe, expect, it } from 'vitest';
import { encodeBusMessage, parseBusMessage } from '../../protocol/bus-message';
import { HeraldError } from '../../protocol/errors';
import { encodeBusProbe, parseBusWireMessage } from './bus-probe';

function refusal(read: () => unknown): HeraldError {
  try {
    read();
  } catch (error) {
    if (error instanceof HeraldError) return error;
    throw error;
  }
  throw new Error('expected a refusal');
}

describe('the probe', () => {
  it('round-trips through parseBusWireMessage, which is what the SNS→SQS bus reads', () => {
    expect(parseBusWireMessage(encodeBusProbe('nonce-1234'), { node: 'n-1' })).toEqual({ kind: 'probe', nonce: 'nonce-1234' });
  });

  it('never reaches a handler: parseBusMessage, which every bus hands to its handler, refuses it as an unknown kind', () => {
    const refused = refusal(() => parseBusMessage(encodeBusProbe('nonce-1234'), { node: 'n-1' }));
    expect(refused.code).toBe('envelope_invalid');
    expect(refused.details.field).toBe('kind');
  });

  it('refuses a nonce that is not 8-64 URL-safe characters, and extra fields', () => {
    expect(() => encodeBusProbe('short')).toThrow(/nonce/);
    for (const nonce of ['short', 'x'.repeat(65), 'has space!', 12345678]) {
      expect(() => parseBusWireMessage(JSON.stringify({ v: 1, kind: 'probe', nonce }), { node: 'n-1' })).toThrow(HeraldError);
    }
    expect(() => parseBusWireMessage('{"v":1,"kind":"probe","nonce":"nonce-1234","x":1}', { node: 'n-1' })).toThrow(HeraldError);
  });
});

describe('parseBusWireMessage on anything but a probe', () => {
  it('reads what parseBusMessage reads', () => {
    const drain = encodeBusMessage({ kind: 'drain' });
    expect(parseBusWireMessage(drain, { node: 'n-1' })).toEqual(parseBusMessage(drain, { node: 'n-1' }));
  });

  it('refuses what parseBusMessage refuses, with the same code and field', () => {
    for (const body of ['not json', '[]', '{"v":2,"kind":"probe","nonce":"nonce-1234"}', '{"v":1,"kind":"nope"}', '{"kind":"probe","nonce":"nonce-1234"}']) {
      const wire = refusal(() => parseBusWireMessage(body, { node: 'n-1' }));
      const plain = refusal(() => parseBusMessage(body, { node: 'n-1' }));
      expect({ code: wire.code, field: wire.details.field, message: wire.message }).toEqual({ code: plain.code, field: plain.details.field, message: plain.message });
    }
  });
});
