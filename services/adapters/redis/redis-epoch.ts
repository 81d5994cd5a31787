import { randomBytes } from 'node:crypto';
import { luaScript, type RedisCommands } from './redis-connection';

/**
 * The epoch of a Redis: one key, `{epoch}`, written by the first process
 * that finds it missing, with the time it did so. Nothing deletes it, so it
 * goes only with everything else: a server that restarted without
 * persistence, a FLUSHALL. Whoever reads it next makes a new one, and
 * whoever knew the old one can tell that the data it relied on is gone.
 *
 * Everything stored before `startedAtMs` may be gone; what was stored after
 * it is still there (the key is made before it can matter: the first read
 * after an emptying finds it missing and makes it, so its time is never
 * earlier than the emptying).
 *
 * KEYS: the epoch key. ARGV: the value to write if it is missing. Answers the value.
 */
const EPOCH = luaScript(
  'epoch',
  `local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]`,
);

export interface Epoch {
  /** Tells one epoch from another, even two begun in the same millisecond. */
  readonly value: string;
  /** From when on this Redis is known to hold everything written to it. */
  readonly startedAtMs: number;
}

/** The current epoch, begun now if there is none. Rejects like any command (`unavailable`). */
export async function readEpoch(redis: RedisCommands, key: string, nowMs: number): Promise<Epoch> {
  const candidate = `${Math.floor(nowMs)}-${randomBytes(6).toString('hex')}`;
  const reply = await redis.script(EPOCH, [key], [candidate]);
  const startedAtMs = typeof reply === 'string' ? Number(reply.split('-', 1)[0]) : NaN;
  if (typeof reply !== 'string' || !Number.isSafeInteger(startedAtMs)) throw new Error(`the Redis epoch key ${key} holds something else than an epoch`);
  return { value: reply, startedAtMs };
}
