import type { AddressInfo } from 'node:net';
import { CreateTableCommand, DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateTopicCommand, SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import dynalite from 'dynalite';
import { buildApp } from 'fauxqs';
import { createTableInput } from '../../services/adapters/aws/table';

const REGION = 'us-east-1';

/**
 * The AWS emulators, started in-process on 127.0.0.1: fauxqs for SNS/SQS,
 * dynalite for DynamoDB. `npm run cluster` starts one pair; so does each AWS
 * test file (test/aws/emulators.ts), whose tests each get their own table and
 * queue prefix from `unique()` there, so they never see each other's items.
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

/** What is used of fauxqs's Fastify app; its own types need Fastify's, which this project does not install. */
interface FauxqsApp {
  listen(options: { port: number; host: string }): Promise<string>;
  close(): Promise<void>;
}
const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

/**
 * Starts the emulators in this process, both on 127.0.0.1 only: fauxqs's own
 * `startFauxqs` always listens on 0.0.0.0, which for `npm run cluster` on a
 * laptop would let anyone on the network publish to the topic (and so to the
 * browsers) or read the node queues. Used by the tests, the cluster script and
 * the cluster benchmark.
 */
export async function startEmulators(options: { fauxqsPort?: number; dynamoPort?: number } = {}): Promise<Emulators> {
  const fauxqs = (buildApp as unknown as (options: { logger: boolean }) => FauxqsApp)({ logger: false });
  const snsEndpoint = await fauxqs.listen({ port: options.fauxqsPort ?? 0, host: '127.0.0.1' });
  const dynamoServer = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    dynamoServer.once('error', reject);
    dynamoServer.listen(options.dynamoPort ?? 0, '127.0.0.1', () => resolve());
  });
  const dynamoEndpoint = `http://127.0.0.1:${(dynamoServer.address() as AddressInfo).port}`;
  const emulators = emulatorsAt({ snsEndpoint, dynamoEndpoint });
  return {
    ...emulators,
    stop: async () => {
      await emulators.stop();
      await fauxqs.close();
      await new Promise<void>((resolve) => dynamoServer.close(() => resolve()));
    },
  };
}

/**
 * Clients and helpers for emulators running elsewhere (another process): the
 * benchmark runs them in a process of their own. `stop()` only frees the clients.
 */
export function emulatorsAt(endpoints: { snsEndpoint: string; dynamoEndpoint: string }): Emulators {
  const { snsEndpoint, dynamoEndpoint } = endpoints;
  const common = { region: REGION, credentials: CREDENTIALS };
  const sns = new SNSClient({ ...common, endpoint: snsEndpoint });
  // fauxqs answers with queue URLs whose host may not resolve: pin the endpoint.
  const sqs = new SQSClient({ ...common, endpoint: snsEndpoint, useQueueUrlAsEndpoint: false });
  const dynamo = new DynamoDBClient({ ...common, endpoint: dynamoEndpoint });
  return {
    region: REGION,
    credentials: CREDENTIALS,
    snsEndpoint,
    sqsEndpoint: snsEndpoint,
    dynamoEndpoint,
    sns,
    sqs,
    dynamo,
    env: () => ({
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_SNS: snsEndpoint,
      AWS_ENDPOINT_URL_SQS: snsEndpoint,
      AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    }),
    createTable: async (name) => {
      await dynamo.send(new CreateTableCommand(createTableInput(name)));
      const until = Date.now() + 5_000;
      for (;;) {
        const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: name }));
        if (Table?.TableStatus === 'ACTIVE') return;
        if (Date.now() > until) throw new Error(`table ${name} still ${Table?.TableStatus ?? 'missing'} after 5 s`);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    },
    createTopic: async (name) => {
      const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: name }));
      if (!TopicArn) throw new Error('CreateTopic returned no ARN');
      return TopicArn;
    },
    stop: () => {
      sns.destroy();
      sqs.destroy();
      dynamo.destroy();
      return Promise.resolve();
    },
  };
}
