/**
 * The built node's start in aws mode when its bus cannot start: it must not
 * listen, and must exit 1 with one JSON line saying why, so the scheduler
 * (ECS) starts another task instead of keeping a node that cannot deliver.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEntryPoint, spawnChildNode, type BuiltEntry } from '../support/child-node';
import { withDeadline } from '../../scripts/fleet/deadline';
import { TEST_SECRET } from '../support/tokens';
import { startEmulators, unique, type Emulators } from './emulators';

let emulators: Emulators;
let entry: BuiltEntry;

beforeAll(async () => {
  [emulators, entry] = await Promise.all([startEmulators(), buildEntryPoint()]);
});

afterAll(async () => {
  entry.dispose();
  await emulators.stop();
});

describe('the node in aws mode', () => {
  it('exits 1 with node.start_failed, never listening, when its topic does not exist', async () => {
    const tableName = unique('start');
    await emulators.createTable(tableName);
    const node = spawnChildNode(entry.path, {
      ...emulators.env(),
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      HERALD_MODE: 'aws',
      HERALD_HOST: '127.0.0.1',
      HERALD_PORT: '0',
      HERALD_NODE_ID: 'doomed',
      HERALD_JWT_SECRET: TEST_SECRET,
      HERALD_TOPIC_ARN: 'arn:aws:sns:us-east-1:000000000000:no-such-topic',
      HERALD_TABLE_NAME: tableName,
      HERALD_QUEUE_PREFIX: unique('q'),
    });
    const exit = await withDeadline(node.exited, 20_000, 'the node to exit');
    expect(exit.code).toBe(1);
    expect(node.logs.some((l) => l.event === 'http.listening')).toBe(false);
    const failed = node.logs.find((l) => l.event === 'node.start_failed');
    expect(failed).toMatchObject({ level: 'error', nodeId: 'doomed', error: { message: 'sns_sqs.open_node_queue failed' } });
    // The SDK's own fault stays visible under the wrapper.
    expect(JSON.stringify(failed)).toMatch(/NotFound|does not exist/i);
  });
});
