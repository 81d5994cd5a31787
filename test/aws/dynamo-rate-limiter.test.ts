/**
 * What only the DynamoDB `RateLimiter` adapter has, beyond the shared contract:
 * its bucket item and TTL, one budget shared by several instances (publishers
 * on several Lambdas) under concurrency, the requests a take costs, SDK
 * faults; and leases over it, as the AWS shape composes them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeleteTableCommand, DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoRateLimiter } from '../../services/adapters/aws/dynamo-rate-limiter';
import type { RateBudget, RateDecision } from '../../services/ports/rate-limiter';
import { HeraldError } from '../../services/protocol/errors';
import { LeasedRateLimiter } from '../../services/shared/leased-rate-limiter';
import { manualClock, type ManualClock } from '../contract/fixtures';
import { describeRateLimiterContract } from '../contract/rate-limiter.contract';
import { startEmulators, unique, type Emulators } from './emulators';

let emulators: Emulators;
const clients: DynamoDBClient[] = [];

beforeAll(async () => {
  emulators = await startEmulators();
});

afterAll(async () => {
  for (const client of clients.splice(0)) client.destroy();
  await emulators.stop();
});

/** A client of its own (a process of its own), recording the command of every request it sends. */
function newClient(calls?: string[]): DynamoDBClient {
  const client = new DynamoDBClient({ region: emulators.region, credentials: emulators.credentials, endpoint: emulators.dynamoEndpoint });
  client.middlewareStack.add(
    (next, context) => (args) => {
      calls?.push(context.commandName ?? 'unknown');
      return next(args);
    },
    { step: 'initialize', name: 'countCalls' },
  );
  clients.push(client);
  return client;
}

async function setUp(budget: RateBudget): Promise<{ tableName: string; clock: ManualClock; limiter: (client?: DynamoDBClient) => DynamoRateLimiter }> {
  const tableName = unique('rate');
  await emulators.createTable(tableName);
  const clock = manualClock();
  return { tableName, clock, limiter: (client = emulators.dynamo) => new DynamoRateLimiter({ client, tableName, budget, clock: clock.now }) };
}

async function storedTat(tableName: string, key: string): Promise<number> {
  const { Item } = await emulators.dynamo.send(
    new GetItemCommand({ TableName: tableName, Key: { pk: { S: `rate#${key}` }, sk: { S: 'bucket' } }, ConsistentRead: true }),
  );
  return Number(Item?.tat?.N);
}

function refusals(decisions: readonly RateDecision[]): RateDecision[] {
  return decisions.filter((d) => !d.allowed);
}

describe('DynamoRateLimiter', () => {
  it('keeps one item per key with its theoretical arrival time, and a ttl past the latest moment it is full again', async () => {
    const { tableName, clock, limiter } = await setUp({ perSecond: 2, burst: 10 });
    await limiter().take('publisher-1', 4);

    const { Item } = await emulators.dynamo.send(
      new GetItemCommand({ TableName: tableName, Key: { pk: { S: 'rate#publisher-1' }, sk: { S: 'bucket' } }, ConsistentRead: true }),
    );
    // 4 spent at 2/s: full again in 2 s. The ttl bounds that by a whole burst (5 s) plus a minute.
    expect(Item).toEqual({
      pk: { S: 'rate#publisher-1' },
      sk: { S: 'bucket' },
      tat: { N: String(clock.now() + 2_000) },
      ttl: { N: String(Math.ceil((clock.now() + 5_000 + 60_000) / 1000)) },
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

  it('never refuses nor fails concurrent takes from eight instances within the budget', async () => {
    // 25 takes at once every 50 ms (500/s against 1,000/s, a burst of 50): the read–modify–write
    // version refused some of these with `unavailable` after 12 collisions.
    const { tableName, clock, limiter } = await setUp({ perSecond: 1_000, burst: 50 });
    const calls: string[] = [];
    const instances = Array.from({ length: 8 }, () => limiter(newClient(calls)));

    const outcomes: Array<PromiseSettledResult<RateDecision>> = [];
    for (let round = 0; round < 20; round++) {
      if (round > 0) clock.advance(50);
      outcomes.push(...(await Promise.allSettled(Array.from({ length: 25 }, (_, i) => instances[i % 8]!.take('publisher-1')))));
    }

    expect(outcomes).toHaveLength(500);
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
    expect(outcomes.filter((o) => o.status === 'fulfilled' && !o.value.allowed)).toEqual([]);
    // None lost either: the last round's 25 takes each moved the bucket on by exactly 1 ms.
    expect(await storedTat(tableName, 'publisher-1')).toBe(clock.now() + 25);
    // No take retried: at most the two writes (idle, then busy: each round, every instance but
    // the first to write finds the bucket busy), and no read, since none was refused.
    expect(calls.filter((c) => c !== 'UpdateItemCommand')).toEqual([]);
    expect(calls.length).toBeLessThanOrEqual(2 * 500);
  });

  it('never allows more than the burst to concurrent takes from eight instances', async () => {
    const { limiter } = await setUp({ perSecond: 1, burst: 25 });
    const instances = Array.from({ length: 8 }, () => limiter(newClient()));

    const decisions = await Promise.all(Array.from({ length: 40 }, (_, i) => instances[i % 8]!.take('publisher-1')));

    expect(decisions.filter((d) => d.allowed)).toHaveLength(25);
    for (const refusal of refusals(decisions)) expect(refusal).toEqual({ allowed: false, retryAfterMs: 1_000 });
    expect((await instances[0]!.take('publisher-1')).allowed).toBe(false);
  });

  it('is stricter, never more generous, on an instance whose clock lags', async () => {
    const { tableName, clock, limiter } = await setUp({ perSecond: 1, burst: 5 });
    const ahead = limiter();
    const lagging = new DynamoRateLimiter({ client: emulators.dynamo, tableName, budget: { perSecond: 1, burst: 5 }, clock: () => clock.now() - 3_000 });
    expect(await ahead.take('publisher-1', 4)).toEqual({ allowed: true });

    // Three seconds behind, the bucket's time is 7 s ahead of it: nothing left, not a refill.
    expect(await lagging.take('publisher-1')).toEqual({ allowed: false, retryAfterMs: 3_000 });
    expect(await ahead.take('publisher-1')).toEqual({ allowed: true });
    expect(await ahead.take('publisher-1')).toEqual({ allowed: false, retryAfterMs: 1_000 });
  });

  it('costs one UpdateItem per take, busy or idle, and one GetItem per repeated refusal', async () => {
    const calls: string[] = [];
    const { clock, limiter } = await setUp({ perSecond: 1, burst: 2 });
    const instance = limiter(newClient(calls));

    await instance.take('publisher-1'); // idle: a fresh bucket
    expect(calls.splice(0)).toEqual(['UpdateItemCommand']);
    await instance.take('publisher-1'); // busy
    expect(calls.splice(0)).toEqual(['UpdateItemCommand']);
    expect((await instance.take('publisher-1')).allowed).toBe(false);
    expect(calls.splice(0)).toEqual(['GetItemCommand']);
    clock.advance(5_000);
    await instance.take('publisher-1'); // idle again: full
    expect(calls.splice(0)).toEqual(['UpdateItemCommand']);
    clock.advance(500);
    await instance.take('publisher-1'); // busy, half a token back
    expect(calls.splice(0)).toEqual(['UpdateItemCommand']);
  });

  it('costs an instance that has not seen a busy bucket one more UpdateItem, once', async () => {
    const calls: string[] = [];
    const { limiter } = await setUp({ perSecond: 1, burst: 5 });
    await limiter().take('publisher-1');
    const late = limiter(newClient(calls));

    await late.take('publisher-1');
    expect(calls.splice(0)).toEqual(['UpdateItemCommand', 'UpdateItemCommand']);
    await late.take('publisher-1');
    expect(calls.splice(0)).toEqual(['UpdateItemCommand']);
  });

  it('reads a bucket written before tat (tokens, updatedAtMs) as full', async () => {
    const { tableName, clock, limiter } = await setUp({ perSecond: 1, burst: 3 });
    await emulators.dynamo.send(
      new PutItemCommand({ TableName: tableName, Item: { pk: { S: 'rate#publisher-1' }, sk: { S: 'bucket' }, tokens: { N: '0' }, updatedAtMs: { N: String(clock.now()) } } }),
    );
    const instance = limiter();

    for (let i = 0; i < 3; i++) expect(await instance.take('publisher-1'), `take ${i + 1}`).toEqual({ allowed: true });
    expect((await instance.take('publisher-1')).allowed).toBe(false);
  });

  it('refuses a malformed bucket with a message naming it, not as a transient fault', async () => {
    const { tableName, limiter } = await setUp({ perSecond: 1, burst: 1 });
    await emulators.dynamo.send(new PutItemCommand({ TableName: tableName, Item: { pk: { S: 'rate#publisher-1' }, sk: { S: 'bucket' }, tat: { S: 'soon' } } }));

    const error = await limiter().take('publisher-1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(HeraldError);
    expect((error as Error).message).toMatch(/malformed rate bucket.*tat/);
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

  it('refuses a budget it could never honour, and a negative cost', async () => {
    expect(() => new DynamoRateLimiter({ client: emulators.dynamo, tableName: 't', budget: { perSecond: 0, burst: 1 } })).toThrow(/perSecond > 0/);
    expect(() => new DynamoRateLimiter({ client: emulators.dynamo, tableName: 't', budget: { perSecond: 1, burst: 0.5 } })).toThrow(/burst >= 1/);
    const { limiter } = await setUp({ perSecond: 1, burst: 1 });
    await expect(limiter().take('publisher-1', -1)).rejects.toThrow(/cost >= 0/);
  });
});

describe('LeasedRateLimiter over DynamoRateLimiter', () => {
  it('never refuses four publishers within the budget, with far fewer requests than takes', async () => {
    const budget = { perSecond: 1_000, burst: 2_000 };
    const { tableName, clock } = await setUp(budget);
    const calls: string[] = [];
    const publishers = Array.from(
      { length: 4 },
      () => new LeasedRateLimiter({ shared: new DynamoRateLimiter({ client: newClient(calls), tableName, budget, clock: clock.now }), budget, clock: clock.now }),
    );

    // Each publisher takes 5 at once every 50 ms: 400/s in all, 125 takes each.
    const decisions: RateDecision[] = [];
    for (let round = 0; round < 25; round++) {
      if (round > 0) clock.advance(50);
      decisions.push(...(await Promise.all(publishers.flatMap((p) => Array.from({ length: 5 }, () => p.take('publisher-1'))))));
    }

    expect(decisions).toHaveLength(500);
    expect(refusals(decisions)).toEqual([]);
    // The chunk doubles from 1 to its cap of 50 (perSecond/20) in 7 leases covering 120 takes,
    // so 125 takes need at most 9 leases per publisher; a lease is at most two UpdateItems
    // (idle, then busy) and no GetItem, since nothing is refused.
    expect(calls.filter((c) => c !== 'UpdateItemCommand')).toEqual([]);
    expect(calls.length).toBeLessThanOrEqual(4 * 9 * 2);
  });
});

// The contract through leases, on DynamoDB as the AWS shape runs it.
describeRateLimiterContract('leased over dynamodb', async (context, budget) => {
  const tableName = `${context.prefix}-table`;
  await emulators.createTable(tableName);
  const shared = new DynamoRateLimiter({ client: emulators.dynamo, tableName, budget, clock: context.clock.now });
  return {
    limiter: new LeasedRateLimiter({ shared, budget, clock: context.clock.now }),
    cleanup: async () => {
      await emulators.dynamo.send(new DeleteTableCommand({ TableName: tableName }));
    },
  };
});
