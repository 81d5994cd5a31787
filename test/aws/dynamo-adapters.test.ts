/**
 * The DynamoDB adapters against the same port contracts as the memory
 * adapters, on dynalite through the real SDK v3 client. One emulator for the
 * file; a fresh table per test, named from the test's unique prefix.
 */
import { afterAll, beforeAll } from 'vitest';
import { DeleteTableCommand } from '@aws-sdk/client-dynamodb';
import { DynamoHistory } from '../../services/adapters/aws/dynamo-history';
import { DynamoOwners } from '../../services/adapters/aws/dynamo-owners';
import { DynamoRateLimiter } from '../../services/adapters/aws/dynamo-rate-limiter';
import { describeHistoryContract } from '../contract/history.contract';
import { describeOwnersContract } from '../contract/owners.contract';
import { describeRateLimiterContract } from '../contract/rate-limiter.contract';
import { startEmulators, type Emulators } from './emulators';

let emulators: Emulators;

beforeAll(async () => {
  emulators = await startEmulators();
});

afterAll(async () => {
  await emulators.stop();
});

/** A table for one test, dropped when the test is done. */
async function table(prefix: string): Promise<{ tableName: string; cleanup: () => Promise<void> }> {
  const tableName = `${prefix}-table`;
  await emulators.createTable(tableName);
  return {
    tableName,
    cleanup: async () => {
      await emulators.dynamo.send(new DeleteTableCommand({ TableName: tableName }));
    },
  };
}

describeOwnersContract('dynamodb', async (context) => {
  const { tableName, cleanup } = await table(context.prefix);
  return { owners: new DynamoOwners({ client: emulators.dynamo, tableName, clock: context.clock.now }), cleanup };
});

describeHistoryContract('dynamodb', async (context, options) => {
  const { tableName, cleanup } = await table(context.prefix);
  return {
    history: new DynamoHistory({ client: emulators.dynamo, tableName, maxEventsPerStream: options.maxEventsPerStream, clock: context.clock.now }),
    looksBack: true,
    cleanup,
  };
});

describeRateLimiterContract('dynamodb', async (context, budget) => {
  const { tableName, cleanup } = await table(context.prefix);
  return { limiter: new DynamoRateLimiter({ client: emulators.dynamo, tableName, budget, clock: context.clock.now }), cleanup };
});
