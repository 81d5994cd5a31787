import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SNSClient } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Env } from '../../shared/settings';
import { commonConfig, createPublishClients, endpointFor, REQUEST_TIMEOUT_MS, requestHandler, type AwsClientOptions } from './publish-clients';
import { RequestMeter } from './request-meter';

export type { AwsClientOptions } from './publish-clients';

export interface AwsClients {
  readonly sns: SNSClient;
  readonly sqs: SQSClient;
  readonly dynamo: DynamoDBClient;
  /** Counts what the three clients send, by operation, and the DynamoDB units it consumed (request-meter.ts). */
  readonly meter: RequestMeter;
}

/**
 * The SDK clients of the aws shape, from the environment: `AWS_REGION` (else
 * the SDK's own region chain) and the standard endpoint overrides
 * `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SNS` / `_SQS` / `_DYNAMODB`, which is
 * how the integration tests reach fauxqs and dynalite (README, "Configuration").
 * One request meter counts what all three send.
 */
export function createAwsClients(env: Env, options: AwsClientOptions = {}): AwsClients {
  const sqsEndpoint = endpointFor(env, 'SQS');
  const clients = {
    ...createPublishClients(env, options),
    sqs: new SQSClient({
      ...commonConfig(env, options),
      // With an override the SDK would otherwise send each call to the host in the
      // QueueUrl, which for emulators (fauxqs: sqs.<region>.localhost) may not resolve.
      ...(sqsEndpoint ? { endpoint: sqsEndpoint, useQueueUrlAsEndpoint: false } : {}),
      requestHandler: requestHandler(REQUEST_TIMEOUT_MS.sqs),
    }),
  };
  const meter = new RequestMeter();
  for (const client of [clients.sns, clients.sqs, clients.dynamo]) meter.attach(client);
  return { ...clients, meter };
}
