/**
 * Event ids are ULIDs: 48 bits of milliseconds then 80 random bits, in Crockford
 * base32. They sort by time as plain strings, which is what replay needs: "every
 * event after X" is a string comparison in memory and a key condition in DynamoDB.
 * Within one process ids are strictly increasing even inside one millisecond.
 */

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const ID_PATTERN = /^[0-7][0-9A-HJKMNP-TV-Z]{25}$/;
const TIME_CHARS = 10;
const RANDOM_CHARS = 16;

let lastTimeMs = -1;
let lastRandom: number[] = [];

function encodeTime(ms: number): string {
  let out = '';
  let rest = ms;
  for (let i = 0; i < TIME_CHARS; i++) {
    out = ALPHABET.charAt(rest % 32) + out;
    rest = Math.floor(rest / 32);
  }
  return out;
}

/**
 * Random bytes drawn 4 KiB at a time: one `getRandomValues` call per 256 ids.
 * A call per id (a fresh array, the CSPRNG's own checks) was about 7 µs of
 * every one-notification publish, more than the rest of minting.
 */
const POOL_BYTES = 4096;
const pool = new Uint8Array(POOL_BYTES);
let poolAt = POOL_BYTES;

function randomDigits(): number[] {
  if (poolAt + RANDOM_CHARS > POOL_BYTES) {
    crypto.getRandomValues(pool);
    poolAt = 0;
  }
  const digits = new Array<number>(RANDOM_CHARS);
  for (let i = 0; i < RANDOM_CHARS; i++) digits[i] = pool[poolAt + i]! & 31;
  poolAt += RANDOM_CHARS;
  return digits;
}

/** Adds one to a base32 digit array; false on overflow (2^80 ids in one ms). */
function increment(digits: number[]): boolean {
  for (let i = digits.length - 1; i >= 0; i--) {
    const d = digits[i] ?? 0;
    if (d < 31) {
      digits[i] = d + 1;
      return true;
    }
    digits[i] = 0;
  }
  return false;
}

/** A new, unique, time-sortable event id. */
export function newEventId(nowMs: number = Date.now()): string {
  if (!(nowMs >= 0 && nowMs < 2 ** 48)) throw new RangeError(`event id time out of range: ${nowMs}`);
  // Whole milliseconds only: a fractional clock would draw fresh randomness inside one
  // encoded millisecond. And a clock that steps back (NTP) must not make ids go backwards.
  const timeMs = Math.max(Math.floor(nowMs), lastTimeMs);
  const sameMs = timeMs === lastTimeMs;
  if (!sameMs || !increment(lastRandom)) {
    lastTimeMs = sameMs ? timeMs + 1 : timeMs;
    lastRandom = randomDigits();
  }
  let random = '';
  for (const d of lastRandom) random += ALPHABET.charAt(d);
  return encodeTime(lastTimeMs) + random;
}

export function isEventId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

/** Milliseconds since the epoch encoded in an id. */
export function eventIdTimeMs(id: string): number {
  let ms = 0;
  for (let i = 0; i < TIME_CHARS; i++) ms = ms * 32 + ALPHABET.indexOf(id.charAt(i));
  return ms;
}

/** The smallest id of a given millisecond: every id minted at or after `ms` sorts at or above it. */
export function eventIdFloor(ms: number): string {
  return encodeTime(ms) + '0'.repeat(RANDOM_CHARS);
}
