import { describe, expect, it } from 'vitest';
import { HeraldError } from '../protocol/errors';
import { AdmissionControl } from './admission';
import { manualClock } from './fakes';

/** Open streams as the hub counts them, set by the test. */
class Streams {
  size = 0;
  readonly byAddress = new Map<string, number>();

  streamsFrom(address: string): number {
    return this.byAddress.get(address) ?? 0;
  }
}

function setup(overrides: { maxConnections?: number; maxConnectionsPerAddress?: number; burst?: number; perSecond?: number } = {}) {
  const hub = new Streams();
  const time = manualClock();
  let draining = false;
  const admission = new AdmissionControl({
    hub,
    clock: time.clock,
    draining: () => draining,
    config: {
      maxConnections: overrides.maxConnections ?? 100,
      maxConnectionsPerAddress: overrides.maxConnectionsPerAddress ?? 100,
      connectRatePerAddress: { perSecond: overrides.perSecond ?? 1, burst: overrides.burst ?? 100 },
    },
  });
  return {
    admission,
    hub,
    time,
    drain: () => {
      draining = true;
    },
  };
}

/** The refusal `admit` throws: its code and retry hint. */
function refusal(admit: () => unknown): { code: string; retryAfterMs: number | undefined } {
  try {
    admit();
  } catch (error) {
    if (!(error instanceof HeraldError)) throw error;
    return { code: error.code, retryAfterMs: error.details.retryAfterMs };
  }
  throw new Error('admitted');
}

describe('AdmissionControl', () => {
  it('refuses every stream while draining, with a retry a second away', () => {
    const { admission, drain } = setup();
    admission.admit('10.0.0.1').release();
    drain();
    expect(refusal(() => admission.admit('10.0.0.1'))).toEqual({ code: 'draining', retryAfterMs: 1000 });
  });

  it('counts the open streams and those still being admitted against the node cap', () => {
    const { admission, hub } = setup({ maxConnections: 3 });
    hub.size = 1;
    const first = admission.admit('10.0.0.1');
    admission.admit('10.0.0.2');
    expect(refusal(() => admission.admit('10.0.0.3'))).toEqual({ code: 'node_full', retryAfterMs: 5000 });
    first.release();
    expect(() => admission.admit('10.0.0.3')).not.toThrow();
  });

  it('counts the open streams and those still being admitted from one address against its cap, and no other', () => {
    const { admission, hub } = setup({ maxConnectionsPerAddress: 2 });
    hub.byAddress.set('10.0.0.1', 1);
    const held = admission.admit('10.0.0.1');
    expect(refusal(() => admission.admit('10.0.0.1'))).toEqual({ code: 'too_many_streams', retryAfterMs: 5000 });
    expect(() => admission.admit('10.0.0.2')).not.toThrow();
    held.release();
    expect(() => admission.admit('10.0.0.1')).not.toThrow();
  });

  it('limits the rate of new connections per address, and lets it refill with time', () => {
    const { admission, time } = setup({ burst: 2, perSecond: 1 });
    admission.admit('10.0.0.1').release();
    admission.admit('10.0.0.1').release();
    const refused = refusal(() => admission.admit('10.0.0.1'));
    expect(refused.code).toBe('too_many_connects');
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(1000);
    expect(() => admission.admit('10.0.0.2')).not.toThrow();
    time.advance(1000);
    expect(() => admission.admit('10.0.0.1')).not.toThrow();
  });

  it('spends no connect budget on a stream refused by a cap', () => {
    const { admission, hub } = setup({ maxConnections: 1, burst: 1 });
    hub.size = 1;
    expect(refusal(() => admission.admit('10.0.0.1')).code).toBe('node_full');
    hub.size = 0;
    expect(() => admission.admit('10.0.0.1')).not.toThrow();
  });

  it('frees one place per admission however often it is released', () => {
    const { admission } = setup({ maxConnections: 2 });
    const first = admission.admit('10.0.0.1');
    admission.admit('10.0.0.2');
    first.release();
    first.release();
    admission.admit('10.0.0.3');
    expect(refusal(() => admission.admit('10.0.0.4')).code).toBe('node_full');
  });
});
