import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient, type SNSClientConfig } from '@aws-sdk/client-sns';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { Env } from '../../shared/settings';
import { RequestMeter } from './request-meter';

export interface AwsClients {
  readonly sns: SNSClient;
  readonly sqs: SQSClient;
  readonly dynamo: DynamoDBClient;
  /** Counts what the three clients send, by operation, and the DynamoDB units it consumed (request-meter.ts). */
  readonly meter: RequestMeter;
}

export interface AwsClientOptions {
  /**
   * Static credentials or a provider: for emulators only. Production passes
   * none, so the SDK's default chain finds the task role (never hard-code keys).
   * @default the SDK's default credential provider chain
   */
  readonly credentials?: NonNullable<SNSClientConfig['credentials']>;
  /** @default 3 (the SDK's standard retry mode) */
  readonly maxAttempts?: number;
}

/** A TCP connect that takes longer than this means the endpoint is unreachable; fail and retry. */
const CONNECTION_TIMEOUT_MS = 3_000;
/** Whole-request deadlines. SQS must outlast a 20 s long poll; the others answer in milliseconds. */
const REQUEST_TIMEOUT_MS = { sns: 10_000, sqs: 30_000, dynamo: 5_000 } as const;

function handler(requestTimeout: number): { connectionTimeout: number; requestTimeout: number; throwOnRequestTimeout: true } {
  // Without throwOnRequestTimeout the SDK only warns when requestTimeout passes.
  return { connectionTimeout: CONNECTION_TIMEOUT_MS, requestTimeout, throwOnRequestTimeout: true };
}

function endpointFor(env: Env, service: 'SNS' | 'SQS' | 'DYNAMODB'): string | undefined {
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.trim() === 'true') return undefined;
  const value = env[`AWS_ENDPOINT_URL_${service}`]?.trim() || env.AWS_ENDPOINT_URL?.trim();
  return value === '' ? undefined : value;
}

/**
 * The SDK clients of the aws shape, from the environment: `AWS_REGION` (else
 * the SDK's own region chain) and the standard endpoint overrides
 * `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SNS` / `_SQS` / `_DYNAMODB`, which is
 * how the integration tests reach fauxqs and dynalite (DESIGN.md, "Configuration").
 * One request meter counts what all three send.
 */
export function createAwsClients(env: Env, options: AwsClientOptions = {}): AwsClients {
  const region = env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim() || undefined;
  const common = {
    ...(region === undefined ? {} : { region }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    maxAttempts: options.maxAttempts ?? 3,
  };
  const snsEndpoint = endpointFor(env, 'SNS');
  const sqsEndpoint = endpointFor(env, 'SQS');
  const dynamoEndpoint = endpointFor(env, 'DYNAMODB');
  const clients = {
    sns: new SNSClient({ ...common, ...(snsEndpoint ? { endpoint: snsEndpoint } : {}), requestHandler: handler(REQUEST_TIMEOUT_MS.sns) }),
    sqs: new SQSClient({
      ...common,
      // With an override the SDK would otherwise send each call to the host in the
      // QueueUrl, which for emulators (fauxqs: sqs.<region>.localhost) may not resolve.
      ...(sqsEndpoint ? { endpoint: sqsEndpoint, useQueueUrlAsEndpoint: false } : {}),
      requestHandler: handler(REQUEST_TIMEOUT_MS.sqs),
    }),
    dynamo: new DynamoDBClient({ ...common, ...(dynamoEndpoint ? { endpoint: dynamoEndpoint } : {}), requestHandler: handler(REQUEST_TIMEOUT_MS.dynamo) }),
  };
  const meter = new RequestMeter();
  for (const client of Object.values(clients)) meter.attach(client);
  return { ...clients, meter };
}
