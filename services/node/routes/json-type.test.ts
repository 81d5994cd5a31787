import { describe, expect, it } from 'vitest';
import { HeraldError } from '../../protocol/errors';
import { requireJsonType } from './json-type';

describe('requireJsonType', () => {
  it.each(['application/json', 'Application/JSON', 'application/json; charset=utf-8', 'application/json;charset="UTF-8"'])('accepts %s', (type) => {
    expect(() => requireJsonType(type)).not.toThrow();
  });

  it.each([undefined, '', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', 'application/jsonp'])('refuses %s with unsupported_media_type', (type) => {
    let thrown: unknown;
    try {
      requireJsonType(type);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(HeraldError);
    expect((thrown as HeraldError).code).toBe('unsupported_media_type');
  });
});
