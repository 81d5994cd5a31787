/**
 * The request meter on the clients `createAwsClients` makes, against the
 * emulators: it must count what the SDK actually sent, and DynamoDB's units as
 * DynamoDB (here dynalite) reports them.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { BatchWriteItemCommand, GetItemCommand, PutItemCommand, UpdateItemCommand, type WriteRequest } from '@aws-sdk/client-dynamodb';
import { PublishBatchCommand, PublishCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, DeleteQueueCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { createAwsClients, type AwsClients } from '../../services/adapters/aws/sdk-clients';
import { composeAws } from '../../services/node/compose';
import { loadConfig } from '../../services/node/config';
import { startHerald } from '../../services/node/server';
import { createLogger } from '../../services/shared/log';
import { eventually } from '../../scripts/fleet/deadline';
import { scrape, value } from '../support/prometheus-text';
import { TEST_SECRET } from '../support/tokens';
import { startEmulators, unique, type Emulators } from './emulators';

let emulators: Emulators;

beforeAll(async () => {
  emulators = await startEmulators();
});

afterAll(async () => {
  await emulators.stop();
});

function metered(): AwsClients {
  const clients = createAwsClients(emulators.env(), { credentials: emulators.credentials, maxAttempts: 2 });
  onTestFinished(() => {
    clients.sns.destroy();
    clients.sqs.destroy();
    clients.dynamo.destroy();
  });
  return clients;
}

async function table(): Promise<string> {
  const name = unique('meter');
  await emulators.createTable(name);
  return name;
}

const key = (sk: string): Record<string, { S: string }> => ({ pk: { S: 'meter' }, sk: { S: sk } });
const puts = (from: number, count: number): WriteRequest[] => Array.from({ length: count }, (_, i) => ({ PutRequest: { Item: { ...key(`b${from + i}`), d: { S: 'x'.repeat(100) } } } }));

describe('RequestMeter on DynamoDB', () => {
  it('counts a PutItem and 30 items in two BatchWriteItem requests, with the write units DynamoDB reports', async () => {
    const { dynamo, meter } = metered();
    const TableName = await table();

    await dynamo.send(new PutItemCommand({ TableName, Item: { ...key('big'), d: { S: 'x'.repeat(2500) } } }));
    await dynamo.send(new BatchWriteItemCommand({ RequestItems: { [TableName]: puts(0, 25) } }));
    await dynamo.send(new BatchWriteItemCommand({ RequestItems: { [TableName]: puts(25, 5) } }));

    const usage = meter.snapshot();
    // A 2.5 KB item is 3 units (1 KB each, rounded up); each small item 1.
    expect(usage['DynamoDB.PutItem']).toMatchObject({ requests: 1, billedRequests: 1, writeUnits: 3, readUnits: 0 });
    expect(usage['DynamoDB.BatchWriteItem']).toMatchObject({ requests: 2, writeUnits: 30, readUnits: 0 });
  });

  it('takes its units from what DynamoDB answers: the same figure a caller asking for them sees', async () => {
    const { dynamo, meter } = metered();
    const TableName = await table();
    await dynamo.send(new PutItemCommand({ TableName, Item: { ...key('a'), d: { S: 'x'.repeat(5000) } } }));
    const before = meter.snapshot()['DynamoDB.GetItem']?.readUnits ?? 0;

    const answer = await dynamo.send(new GetItemCommand({ TableName, Key: key('a'), ConsistentRead: true, ReturnConsumedCapacity: 'TOTAL' }));

    expect(answer.ConsumedCapacity?.CapacityUnits).toBeGreaterThan(0);
    expect(meter.snapshot()['DynamoDB.GetItem']?.readUnits).toBe(before + answer.ConsumedCapacity!.CapacityUnits!);
  });

  it('counts an eventually consistent read of a small item as half a read unit', async () => {
    const { dynamo, meter } = metered();
    const TableName = await table();

    await dynamo.send(new GetItemCommand({ TableName, Key: key('none') }));

    expect(meter.snapshot()['DynamoDB.GetItem']).toMatchObject({ requests: 1, readUnits: 0.5, writeUnits: 0 });
  });

  it('leaves a ReturnConsumedCapacity the caller set alone, and the caller\'s input unchanged', async () => {
    const { dynamo, meter } = metered();
    const TableName = await table();
    const input = { TableName, Item: key('quiet'), ReturnConsumedCapacity: 'NONE' as const };

    const answer = await dynamo.send(new PutItemCommand(input));

    expect(answer.ConsumedCapacity).toBeUndefined();
    expect(meter.snapshot()['DynamoDB.PutItem']).toMatchObject({ requests: 1, writeUnits: 0 });
    const plain = { TableName, Item: key('plain') };
    await dynamo.send(new PutItemCommand(plain));
    expect(plain).not.toHaveProperty('ReturnConsumedCapacity');
  });

  it('charges a write whose condition failed one write unit, which DynamoDB bills but does not report', async () => {
    const { dynamo, meter } = metered();
    const TableName = await table();

    const failed = dynamo.send(
      new UpdateItemCommand({ TableName, Key: key('absent'), UpdateExpression: 'SET n = :n', ConditionExpression: 'attribute_exists(pk)', ExpressionAttributeValues: { ':n': { N: '1' } } }),
    );

    await expect(failed).rejects.toMatchObject({ name: 'ConditionalCheckFailedException' });
    expect(meter.snapshot()['DynamoDB.UpdateItem']).toMatchObject({ requests: 1, writeUnits: 1 });
  });

  it('counts every attempt of a call the SDK retried', async () => {
    const { dynamo, meter } = metered();
    const TableName = await table();
    let failures = 0;
    // Below the SDK's retry middleware: the first attempt fails as a 503 would.
    dynamo.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'PutItemCommand' && failures++ === 0) {
          return Promise.reject(Object.assign(new Error('injected 503'), { name: 'ServiceUnavailable', $metadata: { httpStatusCode: 503 }, $fault: 'server' }));
        }
        return next(args);
      },
      { step: 'deserialize', name: 'failFirstAttempt' },
    );

    await dynamo.send(new PutItemCommand({ TableName, Item: key('retried') }));

    expect(meter.snapshot()['DynamoDB.PutItem']).toMatchObject({ requests: 2, billedRequests: 2, writeUnits: 1 });
  });
});

describe('RequestMeter on SNS and SQS', () => {
  it('bills a Publish as one request and a PublishBatch by its payload in 64 KiB chunks, not per entry', async () => {
    const { sns, meter } = metered();
    const TopicArn = await emulators.createTopic(unique('meter'));

    await sns.send(new PublishCommand({ TopicArn, Message: 'x'.repeat(600) }));
    await sns.send(new PublishBatchCommand({ TopicArn, PublishBatchRequestEntries: Array.from({ length: 10 }, (_, i) => ({ Id: String(i), Message: 'x'.repeat(600) })) }));
    // 10 × 10,000 bytes: 100,000 bytes of payload, two chunks.
    await sns.send(new PublishBatchCommand({ TopicArn, PublishBatchRequestEntries: Array.from({ length: 10 }, (_, i) => ({ Id: String(i), Message: 'y'.repeat(10_000) })) }));

    const usage = meter.snapshot();
    expect(usage['SNS.Publish']).toMatchObject({ requests: 1, billedRequests: 1, messages: 1 });
    expect(usage['SNS.PublishBatch']).toMatchObject({ requests: 2, billedRequests: 3, messages: 20 });
  });

  it('counts the messages each ReceiveMessage brought, and the receives that brought none', async () => {
    const { sqs, meter } = metered();
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: unique('meter') }));
    onTestFinished(async () => {
      await emulators.sqs.send(new DeleteQueueCommand({ QueueUrl }));
    });
    for (let i = 0; i < 3; i++) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `m${i}` }));

    const { Messages } = await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
    await sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));

    expect(Messages).toHaveLength(3);
    const usage = meter.snapshot();
    expect(usage['SQS.SendMessage']).toMatchObject({ requests: 3, billedRequests: 3, messages: 3 });
    expect(usage['SQS.ReceiveMessage']).toMatchObject({ requests: 2, messages: 3, emptyReceives: 1 });
  });
});

describe('a node in aws mode', () => {
  it('renders its clients\' meter at /metrics: requests by operation and DynamoDB units by kind', async () => {
    const label = unique('mm');
    await emulators.createTable(`${label}-table`);
    const env = {
      ...emulators.env(),
      HERALD_MODE: 'aws',
      HERALD_HOST: '127.0.0.1',
      HERALD_PORT: '0',
      HERALD_JWT_SECRET: TEST_SECRET,
      HERALD_TOPIC_ARN: await emulators.createTopic(`${label}-topic`),
      HERALD_TABLE_NAME: `${label}-table`,
      HERALD_QUEUE_PREFIX: label,
      HERALD_DRAIN_MS: '0',
    };
    const config = loadConfig(env);
    const log = createLogger({ level: 'error', sink: () => undefined });
    const running = await startHerald({ config, ports: composeAws(config, config.aws!, createAwsClients(env, { credentials: emulators.credentials }), log), log, nodeId: 'metered' });
    onTestFinished(async () => {
      running.server.closeAllConnections();
      await running.shutdown();
    });

    // Its start heartbeats (a PutItem) and sends a probe through SNS to its own queue, received by a long poll.
    await eventually(async () => value(await scrape(running.url), 'herald_aws_requests_total{service="SQS",operation="ReceiveMessage"}') >= 1, 10_000, 'a ReceiveMessage to be counted');
    const scraped = await scrape(running.url);

    expect(scraped.types.get('herald_aws_requests_total')).toBe('counter');
    expect(scraped.types.get('herald_dynamodb_capacity_units_total')).toBe('counter');
    expect(value(scraped, 'herald_aws_requests_total{service="DynamoDB",operation="PutItem"}')).toBeGreaterThanOrEqual(1);
    expect(value(scraped, 'herald_dynamodb_capacity_units_total{operation="PutItem",kind="write"}')).toBeGreaterThanOrEqual(1);
    expect(value(scraped, 'herald_aws_billed_requests_total{service="SNS",operation="Publish"}')).toBeGreaterThanOrEqual(1);
  });
});
