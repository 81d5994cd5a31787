/**
 * The Lambda publisher's handler, called in-process with an environment that
 * points at fauxqs and dynalite: single and batch events, the `publisher` key,
 * refusals returned (not thrown), transient faults thrown after the retries,
 * configuration errors that name the variable — and the esbuild bundle the
 * stack deploys, imported and invoked.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { DeleteTopicCommand } from '@aws-sdk/client-sns';
import { build } from 'esbuild';
import { DynamoHistory } from '../../services/adapters/aws/dynamo-history';
import { DynamoOwners } from '../../services/adapters/aws/dynamo-owners';
import { SnsSqsBus } from '../../services/adapters/aws/sns-sqs-bus';
import { eventIdFloor } from '../../services/protocol/event-id';
import { HeraldError } from '../../services/protocol/errors';
import { createHandler, type HandlerOverrides, type LambdaPublishResult, type PublishHandler } from '../../services/publisher/lambda';
import { createLogger, silentLogger } from '../../services/shared/log';
import { DEADLINE_MS, Inbox } from '../contract/fixtures';
import { eventually } from '../../scripts/fleet/deadline';
import { startTcpProxy } from '../support/tcp-proxy';
import { startEmulators, unique, type Emulators } from './emulators';

let emulators: Emulators;

beforeAll(async () => {
  emulators = await startEmulators();
});

afterAll(async () => {
  await emulators.stop();
});

interface Deployment {
  /** The function's environment, as the stack sets it, pointed at the emulators. */
  readonly env: Record<string, string>;
  readonly tableName: string;
  readonly inbox: Inbox;
  /** A handler on `env` (plus `extra`), logging into `lines`. */
  handler(extra?: Record<string, string>, overrides?: HandlerOverrides): PublishHandler;
  readonly lines: { event: string; [field: string]: unknown }[];
  replayIds(userId: string): Promise<string[]>;
  delivered(): string[];
}

async function deployment(): Promise<Deployment> {
  const topicArn = await emulators.createTopic(unique('topic'));
  const tableName = unique('lambda');
  await emulators.createTable(tableName);
  const owners = new DynamoOwners({ client: emulators.dynamo, tableName });
  const inbox = new Inbox('node-a');
  const node = new SnsSqsBus({ sns: emulators.sns, sqs: emulators.sqs, topicArn, queuePrefix: unique('q'), log: silentLogger, waitTimeSeconds: 1 });
  await owners.heartbeat('node-a', Date.now() + 120_000);
  await node.start('node-a', inbox.handler);
  const now = Date.now();
  await owners.claim({ userId: 'alice', connectionId: 'c-1', nodeId: 'node-a', connectedAtMs: now, expiresAtMs: now + 120_000 }, { mode: 'single' });
  onTestFinished(async () => {
    await node.close();
    await emulators.sns.send(new DeleteTopicCommand({ TopicArn: topicArn }));
  });
  const env = { ...emulators.env(), HERALD_TOPIC_ARN: topicArn, HERALD_TABLE_NAME: tableName };
  const lines: Deployment['lines'] = [];
  const log = createLogger({ level: 'debug', sink: (line) => lines.push(JSON.parse(line) as Deployment['lines'][number]) });
  const history = new DynamoHistory({ client: emulators.dynamo, tableName, maxEventsPerStream: 100 });
  return {
    env,
    tableName,
    inbox,
    lines,
    handler: (extra = {}, overrides = {}) => createHandler({ ...env, ...extra }, { log, clientOptions: { credentials: emulators.credentials }, ...overrides }),
    replayIds: async (userId) => (await history.since(userId, eventIdFloor(Date.now() - 60_000), 100)).events.map((e) => e.id),
    delivered: () => inbox.keys().flatMap((key) => (key.startsWith('deliver:') ? [key.slice('deliver:'.length)] : [])),
  };
}

function succeeded(result: LambdaPublishResult): Extract<LambdaPublishResult, { ok: true }> {
  if (!result.ok) throw new Error(`expected ok, got ${JSON.stringify(result)}`);
  return result;
}

async function rateBucketExists(tableName: string, key: string): Promise<boolean> {
  const { Item } = await emulators.dynamo.send(
    new GetItemCommand({ TableName: tableName, Key: { pk: { S: `rate#${key}` }, sk: { S: 'bucket' } }, ConsistentRead: true }),
  );
  return Item !== undefined;
}

describe('the Lambda publisher handler', () => {
  it('publishes one envelope and answers { ok: true, results } with presence', async () => {
    const d = await deployment();
    const handler = d.handler();

    const answer = succeeded(await handler({ to: { users: ['alice', 'bob'] }, event: 'message', data: { text: 'Hello 👋' } }, { awsRequestId: 'req-1' }));

    expect(answer.results).toEqual([{ id: expect.any(String) as string, recipients: 2, online: 1, offline: ['bob'], duplicate: false }]);
    const id = answer.results[0]!.id;
    await eventually(() => d.delivered().includes(id), DEADLINE_MS, 'the delivery at node-a');
    expect(await d.replayIds('alice')).toEqual([id]);
    expect(d.lines.find((l) => l.event === 'publish.done')).toMatchObject({ requestId: 'req-1', publisherId: 'lambda', notifications: 1, offline: 1 });
    expect(JSON.stringify(d.lines)).not.toContain('Hello');
  });

  it('publishes a batch in order, charging the budget of the default publisher key', async () => {
    const d = await deployment();
    const handler = d.handler();

    const answer = succeeded(await handler({ notifications: [1, 2, 3].map((n) => ({ to: { users: ['alice'] }, event: 'job.progress', data: { n } })) }));

    expect(answer.results).toHaveLength(3);
    expect(await d.replayIds('alice')).toEqual(answer.results.map((r) => r.id));
    expect(await rateBucketExists(d.tableName, 'lambda')).toBe(true);
  });

  it('takes the rate-budget key from a top-level "publisher" (stripped before validation), else HERALD_PUBLISHER_ID', async () => {
    const d = await deployment();

    succeeded(await d.handler()({ publisher: 'billing', to: { users: ['alice'] }, event: 'invoice.paid', data: 12 }));
    succeeded(await d.handler()({ publisher: 'jobs:nightly', notifications: [{ to: { all: true }, event: 'maintenance', data: 'soon' }] }));
    succeeded(await d.handler({ HERALD_PUBLISHER_ID: 'chat-service' })({ to: { users: ['alice'] }, event: 'message', data: 1 }));

    expect(await rateBucketExists(d.tableName, 'billing')).toBe(true);
    expect(await rateBucketExists(d.tableName, 'jobs:nightly')).toBe(true);
    expect(await rateBucketExists(d.tableName, 'chat-service')).toBe(true);
    expect(await rateBucketExists(d.tableName, 'lambda')).toBe(false);
    expect(await d.handler()({ publisher: 'has space', to: { all: true }, event: 'x', data: 1 })).toMatchObject({ ok: false, error: 'envelope_invalid', field: 'publisher' });
    expect(await d.handler()({ publisher: 42, to: { all: true }, event: 'x', data: 1 })).toMatchObject({ ok: false, error: 'envelope_invalid', field: 'publisher' });
  });

  it('returns refusals as { ok: false, error, message, field, index } and publishes nothing of them', async () => {
    const d = await deployment();
    const handler = d.handler({ HERALD_MAX_DATA_BYTES: '50' });
    const valid = { to: { users: ['alice'] }, event: 'message', data: 'ok' };

    expect(await handler({ ...valid, event: 'bad name' })).toEqual({
      ok: false,
      error: 'event_name_invalid',
      message: expect.any(String) as string,
      field: 'event',
    });
    expect(await handler({ notifications: [valid, { ...valid, to: { users: [] } }] })).toMatchObject({ ok: false, error: 'recipients_invalid', field: 'to.users', index: 1 });
    expect(await handler({ ...valid, data: 'x'.repeat(60) })).toMatchObject({ ok: false, error: 'payload_too_large', field: 'data' });
    expect(await handler({ notifications: [] })).toMatchObject({ ok: false, error: 'batch_invalid' });
    expect(await handler('not an object')).toMatchObject({ ok: false, error: 'envelope_invalid' });
    expect(await handler({ notifications: [valid], extra: true })).toMatchObject({ ok: false, error: 'batch_invalid' });

    expect(await d.replayIds('alice')).toEqual([]);
    const sentinel = succeeded(await handler({ ...valid, event: 'sentinel' })).results[0]!.id;
    await eventually(() => d.delivered().includes(sentinel), DEADLINE_MS, 'the sentinel');
    expect(d.delivered()).toEqual([sentinel]);
  });

  it('throws a transient fault after its retries, so the caller retries; the retry with the same id is deduped', async () => {
    const d = await deployment();
    const proxy = await startTcpProxy(emulators.snsEndpoint);
    onTestFinished(() => proxy.close());
    const handler = d.handler({ AWS_ENDPOINT_URL_SNS: proxy.url }, { retry: { attempts: 3, firstDelayMs: 20, maxDelayMs: 50 } });
    const id = eventIdFloor(Date.now());
    const envelope = { id, to: { users: ['alice'] }, event: 'message', data: 1 };
    proxy.block();

    const thrown = await handler(envelope).then(
      () => undefined,
      (error: unknown) => error,
    );

    expect(thrown).toBeInstanceOf(HeraldError);
    expect((thrown as HeraldError).code).toBe('unavailable');
    expect(d.lines.filter((l) => l.event === 'publish.retrying')).toHaveLength(2);
    expect(d.lines.filter((l) => l.event === 'publish.failed')).toHaveLength(1);
    proxy.unblock();
    const retried = succeeded(await handler(envelope));
    expect(retried.results[0]).toMatchObject({ id, duplicate: true, online: 1 });
    expect(await d.replayIds('alice')).toEqual([id]);
    await eventually(() => d.delivered().includes(id), DEADLINE_MS, 'the delivery after the outage');
  });

  it('fails every invocation with a message naming a missing or bad variable, without crashing the import', async () => {
    const d = await deployment();
    const withoutTable = Object.fromEntries(Object.entries(d.env).filter(([name]) => name !== 'HERALD_TABLE_NAME'));
    const handler = createHandler(withoutTable, { log: createLogger({ sink: (line) => d.lines.push(JSON.parse(line) as Deployment['lines'][number]) }) });

    for (let i = 0; i < 2; i++) await expect(handler({ to: { all: true }, event: 'x', data: 1 })).rejects.toThrow(/HERALD_TABLE_NAME: is required/);
    expect(d.lines.filter((l) => l.event === 'config.invalid')).toEqual([expect.objectContaining({ level: 'error', variable: 'HERALD_TABLE_NAME' })]);
    await expect(d.handler({ HERALD_PUBLISH_RATE: 'fast' })({})).rejects.toThrow(/HERALD_PUBLISH_RATE/);
    await expect(d.handler({ HERALD_PUBLISHER_ID: 'a b' })({})).rejects.toThrow(/HERALD_PUBLISHER_ID/);
    await expect(d.handler({ HERALD_LOG_LEVEL: 'loud' })({})).rejects.toThrow(/HERALD_LOG_LEVEL/);
  });
});

describe('the bundled Lambda publisher', () => {
  const variants = {
    // As lib/constructs/herald-function.ts bundles it for the stack.
    'as the stack bundles it (ESM, module fields first, a require banner)': {
      mainFields: ['module', 'main'],
      banner: { js: "import { createRequire as __heraldCreateRequire } from 'node:module'; const require = __heraldCreateRequire(import.meta.url);" },
    },
    'as plain esbuild bundles it': {},
  };

  for (const [name, options] of Object.entries(variants)) {
    it(`loads and publishes ${name}, configured from process.env at its first invocation`, async () => {
      const d = await deployment();
      const dir = await mkdtemp(join(tmpdir(), 'herald-lambda-'));
      onTestFinished(() => rm(dir, { recursive: true, force: true }));
      const outfile = join(dir, 'publisher.mjs');
      await build({ entryPoints: ['services/publisher/lambda.ts'], bundle: true, platform: 'node', format: 'esm', target: 'node22', outfile, logLevel: 'silent', ...options });
      const saved = { ...process.env };
      onTestFinished(() => {
        for (const key of Object.keys(process.env)) if (!(key in saved)) Reflect.deleteProperty(process.env, key);
        Object.assign(process.env, saved);
      });
      Object.assign(process.env, d.env, { HERALD_LOG_LEVEL: 'error' });

      const bundle = (await import(pathToFileURL(outfile).href)) as { handler: PublishHandler };
      const answer = succeeded(await bundle.handler({ to: { users: ['alice'] }, event: 'message', data: 1 }));

      expect(answer.results[0]).toMatchObject({ online: 1, offline: [] });
      await eventually(() => d.delivered().includes(answer.results[0]!.id), DEADLINE_MS, 'the delivery from the bundle');
    });
  }
});
