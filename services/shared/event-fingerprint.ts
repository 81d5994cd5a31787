import { createHash } from 'node:crypto';
import type { HeraldEvent } from '../protocol/envelope';

/**
 * What a publish of an id says, in 22 characters: its name, recipients, ttl
 * and data. A history that meets an id it already holds compares them (the
 * rule is first write wins): the same content is a retry, whose first attempt
 * may have died between its writes, so its missing writes are made; other
 * content is a reuse of the id, which changes nothing.
 */
export function contentFingerprint(event: Pick<HeraldEvent, 'event' | 'to' | 'ttlSeconds' | 'data'>): string {
  return createHash('sha256').update(JSON.stringify([event.event, event.to, event.ttlSeconds, event.data])).digest('base64url').slice(0, 22);
}
