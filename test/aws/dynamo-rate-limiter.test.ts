/**
 * What only the DynamoDB `RateLimiter` adapter has, beyond the shared contract:
 * its bucket item and TTL, one budget shared by several instances (publishers
 * on several Lambdas), the requests a take costs, and SDK faults.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoRateLimiter } from '../../services/adapters/aws/dynamo-rate-limiter';
import type { RateBudget } from '../../services/ports/rate-limiter';
import { HeraldError } from '../../services/protocol/errors';
import { manualClock, type ManualClock } from '../contract/fixtures';
import { startEmulators, unique, type Emulators } from './emulators';

let emulators: Emulators;

beforeAll(async () => {
  emulators = await startEmulators();
});

afterAll(async () => {
  await emulators.stop();
});

function newClient(calls?: string[]): DynamoDBClient {
  const client = new DynamoDBClient({ region: emulators.region, credentials: emulators.credentials, endpoint: emulators.dynamoEndpoint });
  client.middlewareStack.add(
    (next, context) => (args) => {
      calls?.push(context.commandName ?? 'unknown');
      return next(args);
    },
    { step: 'initialize', name: 'countCalls' },
  );
  return client;
}

async function setUp(budget: RateBudget): Promise<{ tableName: string; clock: ManualClock; limiter: (client?: DynamoDBClient) => DynamoRateLimiter }> {
  const tableName = unique('rate');
  await emulators.createTable(tableName);
  const clock = manualClock();
  return { tableName, clock, limiter: (client = emulators.dynamo) => new DynamoRateLimiter({ client, tableName, budget, clock: clock.now }) };
}

describe('DynamoRateLimiter', () => {
  it('keeps one bucket item per key, with a ttl past the moment it is full again', async () => {
    const { tableName, clock, limiter } = await setUp({ perSecond: 2, burst: 10 });
    await limiter().take('publisher-1', 4);

    const { Item } = await emulators.dynamo.send(
      new GetItemCommand({ TableName: tableName, Key: { pk: { S: 'rate#publisher-1' }, sk: { S: 'bucket' } }, ConsistentRead: true }),
    );
    // 4 spent at 2/s: full again in 2 s; the item outlives that by a minute (a deleted bucket reads as full anyway).
    expect(Item).toEqual({
      pk: { S: 'rate#publisher-1' },
      sk: { S: 'bucket' },
      tokens: { N: '6' },
      updatedAtMs: { N: String(clock.now()) },
      ttl: { N: String(Math.ceil((clock.now() + 2_000 + 60_000) / 1000)) },
    });
  });

  it('shares one budget between instances', async () => {
    const { limiter } = await setUp({ perSecond: 1, burst: 4 });
    const [first, second] = [limiter(newClient()), limiter(newClient())];

    expect(await first.take('publisher-1', 3)).toEqual({ allowed: true });
    expect(await second.take('publisher-1')).toEqual({ allowed: true });
    expect(await second.take('publisher-1')).toEqual({ allowed: false, retryAfterMs: 1_000 });
    expect(await first.take('publisher-1')).toEqual({ allowed: false, retryAfterMs: 1_000 });
  });

  it('never allows more than the burst to concurrent takes from several instances', async () => {
    const { limiter } = await setUp({ perSecond: 1, burst: 4 });
    const instances = [limiter(newClient()), limiter(newClient()), limiter(newClient())];

    const decisions = await Promise.all(Array.from({ length: 12 }, (_, i) => instances[i % 3]!.take('publisher-1')));

    expect(decisions.filter((d) => d.allowed)).toHaveLength(4);
  });

  it('does not hand out a refill twice when an instance with a lagging clock writes', async () => {
    const { tableName, clock, limiter } = await setUp({ perSecond: 1, burst: 5 });
    const ahead = limiter();
    const lagging = new DynamoRateLimiter({ client: emulators.dynamo, tableName, budget: { perSecond: 1, burst: 5 }, clock: () => clock.now() - 3_000 });
    expect(await ahead.take('publisher-1', 4)).toEqual({ allowed: true });

    // Three seconds behind, it spends the last token; it must not move the bucket's time back,
    // or the next take would count those three seconds as refill a second time.
    expect(await lagging.take('publisher-1')).toEqual({ allowed: true });
    expect(await ahead.take('publisher-1')).toEqual({ allowed: false, retryAfterMs: 1_000 });
    clock.advance(1_000);
    expect(await ahead.take('publisher-1')).toEqual({ allowed: true });
    expect((await ahead.take('publisher-1')).allowed).toBe(false);
  });

  it('costs one GetItem and one PutItem per allowed take, and only the GetItem per denial', async () => {
    const calls: string[] = [];
    const { limiter } = await setUp({ perSecond: 1, burst: 1 });
    const instance = limiter(newClient(calls));

    await instance.take('publisher-1');
    expect(calls.splice(0)).toEqual(['GetItemCommand', 'PutItemCommand']);
    await instance.take('publisher-1');
    expect(calls.splice(0)).toEqual(['GetItemCommand']);
  });

  it('refuses a malformed bucket with a message naming it, not as a transient fault', async () => {
    const { tableName, limiter } = await setUp({ perSecond: 1, burst: 1 });
    await emulators.dynamo.send(
      new PutItemCommand({ TableName: tableName, Item: { pk: { S: 'rate#publisher-1' }, sk: { S: 'bucket' }, tokens: { S: 'many' }, updatedAtMs: { N: '1' } } }),
    );

    const error = await limiter().take('publisher-1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(HeraldError);
    expect((error as Error).message).toMatch(/malformed rate bucket.*tokens/);
  });

  it('rejects with a transient unavailable HeraldError when DynamoDB cannot be reached', async () => {
    const client = new DynamoDBClient({ region: emulators.region, credentials: emulators.credentials, endpoint: 'http://127.0.0.1:1', maxAttempts: 1 });
    try {
      const limiter = new DynamoRateLimiter({ client, tableName: 'unreachable', budget: { perSecond: 1, burst: 1 } });
      const error = await limiter.take('publisher-1').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HeraldError);
      expect((error as HeraldError).code).toBe('unavailable');
    } finally {
      client.destroy();
    }
  });

  it('refuses a budget it could never honour', () => {
    expect(() => new DynamoRateLimiter({ client: emulators.dynamo, tableName: 't', budget: { perSecond: 0, burst: 1 } })).toThrow(/perSecond > 0/);
    expect(() => new DynamoRateLimiter({ client: emulators.dynamo, tableName: 't', budget: { perSecond: 1, burst: 0.5 } })).toThrow(/burst >= 1/);
  });
});
