import { describe, expect, it } from 'vitest';
import { isWellFormedUtf16, utf8Length } from './utf8';

/** mulberry32: a small seeded PRNG, so the generated table is the same on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Code point ranges by UTF-8 width; lone surrogates are written as single UTF-16 units. */
const RANGES: readonly (readonly [number, number])[] = [
  [0x00, 0x7f],
  [0x80, 0x7ff],
  [0x800, 0xd7ff],
  [0xe000, 0xffff],
  [0x10000, 0x10ffff],
  [0xd800, 0xdbff], // lone high surrogate
  [0xdc00, 0xdfff], // lone low surrogate
];

function randomString(random: () => number, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) {
    const [lo, hi] = RANGES[Math.floor(random() * RANGES.length)]!;
    const code = lo + Math.floor(random() * (hi - lo + 1));
    out += code > 0xffff ? String.fromCodePoint(code) : String.fromCharCode(code);
  }
  return out;
}

describe('utf8Length', () => {
  it.each([
    ['empty', '', 0],
    ['ASCII', 'Hello', 5],
    ['NUL', '\u0000', 1],
    ['the last 1-byte character, U+007F', '\u007f', 1],
    ['the first 2-byte character, U+0080', '\u0080', 2],
    ['é', 'é', 2],
    ['the last 2-byte character, U+07FF', '\u07ff', 2],
    ['the first 3-byte character, U+0800', '\u0800', 3],
    ['€', '€', 3],
    ['the last 3-byte character, U+FFFF', '\uffff', 3],
    ['the first 4-byte character, U+10000', '\u{10000}', 4],
    ['👋', '👋', 4],
    ['the last code point, U+10FFFF', '\u{10ffff}', 4],
    ['a lone high surrogate at the end', 'a\ud800', 4],
    ['a lone high surrogate before ASCII', '\ud800a', 4],
    ['a lone low surrogate', '\udc00', 3],
    ['a reversed pair', '\udc00\ud800', 6],
    ['a high surrogate then a pair', '\ud800\ud83d\udc4b', 7],
    ['two high surrogates', '\ud800\ud800', 6],
  ])('counts %s as Buffer.byteLength does (%#)', (_label, text, bytes) => {
    expect(utf8Length(text)).toBe(bytes);
    expect(Buffer.byteLength(text, 'utf8')).toBe(bytes);
  });

  it('equals Buffer.byteLength on 500 seeded random strings of every width and lone surrogates', () => {
    const random = seeded(0x4e524c44);
    const mismatches: string[] = [];
    for (let i = 0; i < 500; i++) {
      const text = randomString(random, 1 + Math.floor(random() * 40));
      const expected = Buffer.byteLength(text, 'utf8');
      if (utf8Length(text) !== expected) mismatches.push(`${JSON.stringify(text)}: ${utf8Length(text)} ≠ ${expected}`);
    }
    expect(mismatches).toEqual([]);
  });
});

describe('isWellFormedUtf16', () => {
  it.each([
    ['empty', ''],
    ['ASCII', 'alice'],
    ['the last unit below the surrogates, U+D7FF', '\ud7ff'],
    ['the first unit above them, U+E000', '\ue000'],
    ['a pair', '\ud83d\udc4b'],
    ['the highest code point', '\udbff\udfff'],
    ['pairs back to back', '👋🏽👋'],
  ])('accepts %s', (_label, text) => {
    expect(isWellFormedUtf16(text)).toBe(true);
  });

  it.each([
    ['a lone high surrogate at the end', 'a\ud83d'],
    ['a lone high surrogate before a letter', '\ud83da'],
    ['a lone low surrogate', 'a\udc4b'],
    ['a low surrogate then a high one', '\udc4b\ud83d'],
    ['two high surrogates then a low one', '\ud83d\ud83d\udc4b'],
    ['a pair then a lone low surrogate', '\ud83d\udc4b\udc4b'],
  ])('refuses %s', (_label, text) => {
    expect(isWellFormedUtf16(text)).toBe(false);
  });

  it('agrees with the UTF-8 round trip on the seeded random strings', () => {
    const random = seeded(11);
    for (let n = 0; n < 500; n++) {
      const text = randomString(random, 1 + Math.floor(random() * 8));
      const roundTrip = new TextDecoder().decode(new TextEncoder().encode(text));
      expect(isWellFormedUtf16(text), JSON.stringify(text)).toBe(roundTrip === text);
    }
  });
});
