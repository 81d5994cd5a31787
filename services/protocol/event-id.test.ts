import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

type EventIdModule = typeof import('./event-id');

/** A fresh copy of the module, so the monotonic state left by one test never leaks into the next. */
let ids: EventIdModule;

beforeEach(async () => {
  vi.resetModules();
  ids = await import('./event-id');
});

afterEach(() => {
  vi.restoreAllMocks();
});

const ULID = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;
const T = Date.UTC(2025, 5, 1, 12, 0, 0);

/** Makes crypto.getRandomValues fill with `byte`, so the random part is known. */
function fixRandom(byte: number): void {
  vi.spyOn(crypto, 'getRandomValues').mockImplementation(<V extends ArrayBufferView | null>(array: V): V => {
    if (array instanceof Uint8Array) array.fill(byte);
    return array;
  });
}

function expectStrictlyIncreasing(list: readonly string[]): void {
  for (let i = 1; i < list.length; i++) {
    if (!(list[i]! > list[i - 1]!)) throw new Error(`id ${i} (${list[i]}) is not above id ${i - 1} (${list[i - 1]})`);
  }
}

describe('newEventId', () => {
  it('is a 26-character Crockford base32 ULID that isEventId accepts', () => {
    const id = ids.newEventId(T);
    expect(id).toMatch(ULID);
    expect(ids.isEventId(id)).toBe(true);
  });

  it('encodes the time as the ULID spec does (01ARYZ6S41 is 1469918176385 ms)', () => {
    expect(ids.newEventId(1469918176385).slice(0, 10)).toBe('01ARYZ6S41');
  });

  it('puts the random bits after the time, as 16 base32 digits', () => {
    fixRandom(0b101); // 5 → "5"
    expect(ids.newEventId(0)).toBe('0000000000' + '5'.repeat(16));
  });

  it('uses only the low 5 bits of each random byte', () => {
    fixRandom(0xff); // 31 → "Z"
    expect(ids.newEventId(0)).toBe('0000000000' + 'Z'.repeat(16));
  });

  it('is strictly increasing within one millisecond, keeping that millisecond', () => {
    const list = Array.from({ length: 1000 }, () => ids.newEventId(T));
    expectStrictlyIncreasing(list);
    expect(new Set(list.map((id) => ids.eventIdTimeMs(id)))).toEqual(new Set([T]));
  });

  it('increments the random part by one within a millisecond', () => {
    fixRandom(0);
    expect([ids.newEventId(T), ids.newEventId(T), ids.newEventId(T)].map((id) => id.slice(10))).toEqual([
      '0000000000000000',
      '0000000000000001',
      '0000000000000002',
    ]);
  });

  it('carries into the next digit', () => {
    const random = new Uint8Array(16).fill(0);
    random[15] = 31;
    vi.spyOn(crypto, 'getRandomValues').mockImplementation(<V extends ArrayBufferView | null>(array: V): V => {
      if (array instanceof Uint8Array) array.set(random);
      return array;
    });
    const first = ids.newEventId(T);
    const second = ids.newEventId(T);
    expect([first.slice(10), second.slice(10)]).toEqual(['000000000000000Z', '0000000000000010']);
  });

  it('moves to the next millisecond when the random part overflows, and stays increasing', () => {
    // The first id's random part is all ones; every later one draws real randomness from the same pool.
    const realRandom = crypto.getRandomValues.bind(crypto);
    vi.spyOn(crypto, 'getRandomValues').mockImplementationOnce(<V extends ArrayBufferView | null>(array: V): V => {
      if (array instanceof Uint8Array) {
        realRandom(array as Uint8Array<ArrayBuffer>);
        array.fill(0xff, 0, 16);
      }
      return array;
    });
    const last = ids.newEventId(T);
    const next = ids.newEventId(T);
    expect(last.slice(10)).toBe('Z'.repeat(16));
    expect(ids.eventIdTimeMs(next)).toBe(T + 1);
    expect(next > last).toBe(true);
    // Later calls at the original time continue from the borrowed millisecond.
    const after = ids.newEventId(T);
    expect(ids.eventIdTimeMs(after)).toBe(T + 1);
    expect(after > next).toBe(true);
  });

  it('is strictly increasing across many calls over advancing time', () => {
    const list: string[] = [];
    for (let i = 0; i < 5000; i++) list.push(ids.newEventId(T + Math.floor(i / 7)));
    expectStrictlyIncreasing(list);
    expect(ids.eventIdTimeMs(list[list.length - 1]!)).toBe(T + Math.floor(4999 / 7));
  });

  it('draws fresh random digits for each new millisecond, from one pooled draw', () => {
    const spy = vi.spyOn(crypto, 'getRandomValues');
    const list = Array.from({ length: 300 }, (_, i) => ids.newEventId(T + i).slice(10));
    // 300 ids of 16 bytes each come from two 4 KiB draws, not 300 calls.
    expect(spy).toHaveBeenCalledTimes(2);
    expect(new Set(list).size).toBe(300);
  });

  it('sorts as plain strings in time order', () => {
    const times = [0, 1, 31, 32, 1023, 1024, 1_000_000, T, T + 1, 2 ** 40, 2 ** 48 - 1];
    const minted = times.map((ms) => ({ ms, id: ids.newEventId(ms) }));
    const shuffled = [...minted].reverse();
    const byId = [...shuffled].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    expect(byId.map((m) => m.ms)).toEqual(times);
  });

  it('never goes backwards when the clock steps back', () => {
    const before = ids.newEventId(T);
    const afterStepBack = ids.newEventId(T - 5_000);
    expect(afterStepBack > before).toBe(true);
    expect(ids.eventIdTimeMs(afterStepBack)).toBe(T);
    const caughtUp = ids.newEventId(T + 1);
    expect(ids.eventIdTimeMs(caughtUp)).toBe(T + 1);
    expect(caughtUp > afterStepBack).toBe(true);
  });

  it('defaults to the current time', () => {
    vi.useFakeTimers({ now: T });
    try {
      expect(ids.eventIdTimeMs(ids.newEventId())).toBe(T);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('isEventId', () => {
  it.each([
    ['the ULID spec example', '01ARYZ6S41TSV4RRFFQ69G5FAV', true],
    ['the largest time', '7ZZZZZZZZZZZZZZZZZZZZZZZZZ', true],
    ['the smallest id', '0'.repeat(26), true],
    ['a time over 48 bits', '8ZZZZZZZZZZZZZZZZZZZZZZZZZ', false],
    ['lower case', '01aryz6s41tsv4rrffq69g5fav', false],
    ['I', '01ARYZ6S41TSV4RRFFQ69G5FAI', false],
    ['L', '01ARYZ6S41TSV4RRFFQ69G5FAL', false],
    ['O', '01ARYZ6S41TSV4RRFFQ69G5FAO', false],
    ['U', '01ARYZ6S41TSV4RRFFQ69G5FAU', false],
    ['25 characters', '01ARYZ6S41TSV4RRFFQ69G5FA', false],
    ['27 characters', '01ARYZ6S41TSV4RRFFQ69G5FAVV', false],
    ['a trailing newline', '01ARYZ6S41TSV4RRFFQ69G5FAV\n', false],
    ['a replaced id', 'replaced:c1', false],
    ['a number', 1, false],
    ['undefined', undefined, false],
  ])('%s → %s', (_label, value, expected) => {
    expect(ids.isEventId(value)).toBe(expected);
  });
});

describe('eventIdTimeMs', () => {
  it.each([0, 1, 31, 32, T, 2 ** 48 - 1])('round-trips %i ms through eventIdFloor', (ms) => {
    expect(ids.eventIdTimeMs(ids.eventIdFloor(ms))).toBe(ms);
  });

  it('round-trips the time of newly minted ids', () => {
    for (const ms of [T, T + 1, T + 999, T + 86_400_000]) expect(ids.eventIdTimeMs(ids.newEventId(ms))).toBe(ms);
  });
});

describe('eventIdFloor', () => {
  it('is the time followed by sixteen zeros', () => {
    expect(ids.eventIdFloor(1469918176385)).toBe('01ARYZ6S41' + '0'.repeat(16));
    expect(ids.eventIdFloor(0)).toBe('0'.repeat(26));
    expect(ids.isEventId(ids.eventIdFloor(T))).toBe(true);
  });

  it('sorts at or below every id of that millisecond and below every id of the next', () => {
    fixRandom(0);
    const first = ids.newEventId(T);
    vi.restoreAllMocks();
    const rest = Array.from({ length: 200 }, () => ids.newEventId(T));
    const floor = ids.eventIdFloor(T);
    expect(first).toBe(floor);
    for (const id of [first, ...rest]) {
      expect(id >= floor).toBe(true);
      expect(id < ids.eventIdFloor(T + 1)).toBe(true);
    }
  });

  it('sorts above every id of the previous millisecond', () => {
    fixRandom(0xff);
    const largestOfPrevious = ids.newEventId(T - 1);
    expect(largestOfPrevious < ids.eventIdFloor(T)).toBe(true);
  });
});
