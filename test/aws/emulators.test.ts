import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { CreateQueueCommand, GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { startEmulators, unique, type Emulators } from './emulators';

describe('the in-process emulators', () => {
  let emulators: Emulators;
  beforeAll(async () => {
    emulators = await startEmulators();
  });
  afterAll(async () => {
    await emulators.stop();
  });

  it('create the table with the shared key schema, a topic and a queue through the real SDK clients', async () => {
    const table = unique('table');
    await emulators.createTable(table);
    const { Table } = await emulators.dynamo.send(new DescribeTableCommand({ TableName: table }));
    expect(Table?.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(await emulators.createTopic(unique('topic'))).toMatch(/^arn:aws:sns:us-east-1:\d+:topic-/);
    const { QueueUrl } = await emulators.sqs.send(new CreateQueueCommand({ QueueName: unique('queue') }));
    const attributes = await emulators.sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['QueueArn'] }));
    expect(attributes.Attributes?.QueueArn).toMatch(/^arn:aws:sqs:/);
  });
});
