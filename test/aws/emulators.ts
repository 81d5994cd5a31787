import type { AddressInfo } from 'node:net';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateTopicCommand, SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import dynalite from 'dynalite';
import { startFauxqs } from 'fauxqs';
import { createTableInput } from '../../services/adapters/aws/table';

/**
 * The AWS emulators, started in-process on 127.0.0.1:0: fauxqs for SNS/SQS,
 * dynalite for DynamoDB. One pair per test file; each test gets its own table
 * and queue prefix from `unique()`, so tests never see each other's items.
 */
export interface Emulators {
  readonly region: string;
  /** Static credentials: the emulators accept anything, and the SDK must never look for real ones. */
  readonly credentials: { accessKeyId: string; secretAccessKey: string };
  readonly snsEndpoint: string;
  readonly sqsEndpoint: string;
  readonly dynamoEndpoint: string;
  readonly sns: SNSClient;
  readonly sqs: SQSClient;
  readonly dynamo: DynamoDBClient;
  /** Environment for a child process (a node in aws mode, the cluster) pointed at these emulators. */
  env(): Record<string, string>;
  createTable(name: string): Promise<void>;
  createTopic(name: string): Promise<string>;
  stop(): Promise<void>;
}

const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

let counter = 0;

/** A name no other test in this process uses: lower-case, short enough for a queue prefix. */
export function unique(label: string): string {
  counter += 1;
  return `${label}-${process.pid.toString(36)}-${counter.toString(36)}`.toLowerCase().slice(0, 30);
}

export async function startEmulators(): Promise<Emulators> {
  const fauxqs = await startFauxqs({ port: 0, logger: false });
  const dynamoServer = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    dynamoServer.once('error', reject);
    dynamoServer.listen(0, '127.0.0.1', () => resolve());
  });
  const dynamoEndpoint = `http://127.0.0.1:${(dynamoServer.address() as AddressInfo).port}`;
  const common = { region: REGION, credentials: CREDENTIALS };
  const sns = new SNSClient({ ...common, endpoint: fauxqs.address });
  // fauxqs answers with queue URLs on sqs.<region>.localhost, which does not resolve
  // here: pin the endpoint so the SDK does not follow the queue URL's host.
  const sqs = new SQSClient({ ...common, endpoint: fauxqs.address, useQueueUrlAsEndpoint: false });
  const dynamo = new DynamoDBClient({ ...common, endpoint: dynamoEndpoint });

  return {
    region: REGION,
    credentials: CREDENTIALS,
    snsEndpoint: fauxqs.address,
    sqsEndpoint: fauxqs.address,
    dynamoEndpoint,
    sns,
    sqs,
    dynamo,
    env: () => ({
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_SNS: fauxqs.address,
      AWS_ENDPOINT_URL_SQS: fauxqs.address,
      AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    }),
    createTable: async (name) => {
      await dynamo.send(new CreateTableCommand(createTableInput(name)));
      await untilActive(dynamo, name);
    },
    createTopic: async (name) => {
      const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: name }));
      if (!TopicArn) throw new Error('CreateTopic returned no ARN');
      return TopicArn;
    },
    stop: async () => {
      sns.destroy();
      sqs.destroy();
      dynamo.destroy();
      await fauxqs.stop();
      await new Promise<void>((resolve) => dynamoServer.close(() => resolve()));
    },
  };
}

/**
 * dynalite answers CreateTable while the table is still CREATING and marks it
 * ACTIVE on a timer (`createTableMs: 0` is a setTimeout of ~1 ms); a request in
 * between fails with ResourceNotFoundException. So wait, as one must on AWS too.
 */
async function untilActive(dynamo: DynamoDBClient, name: string): Promise<void> {
  const until = Date.now() + 5_000;
  for (;;) {
    const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: name }));
    if (Table?.TableStatus === 'ACTIVE') return;
    if (Date.now() > until) throw new Error(`table ${name} still ${Table?.TableStatus ?? 'missing'} after 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
