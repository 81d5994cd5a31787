/**
 * The SDK clients publishing needs, SNS and DynamoDB, built apart from the
 * SQS client only a node needs: whatever bundles a module that imports
 * `@aws-sdk/client-sqs` gets that package as a run-time dependency (esbuild
 * keeps an external import even when nothing uses it), and the publisher
 * library (`@herald/publisher`) must not need it. `createAwsClients`
 * (sdk-clients.ts) builds on this and adds the SQS client.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient, type SNSClientConfig } from '@aws-sdk/client-sns';
import type { Env } from '../../shared/settings';

export interface PublishClients {
  readonly sns: SNSClient;
  readonly dynamo: DynamoDBClient;
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
export const REQUEST_TIMEOUT_MS = { sns: 10_000, sqs: 30_000, dynamo: 5_000 } as const;

export function requestHandler(requestTimeout: number): { connectionTimeout: number; requestTimeout: number; throwOnRequestTimeout: true } {
  // Without throwOnRequestTimeout the SDK only warns when requestTimeout passes.
  return { connectionTimeout: CONNECTION_TIMEOUT_MS, requestTimeout, throwOnRequestTimeout: true };
}

export function endpointFor(env: Env, service: 'SNS' | 'SQS' | 'DYNAMODB'): string | undefined {
  if (env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS?.trim() === 'true') return undefined;
  const value = env[`AWS_ENDPOINT_URL_${service}`]?.trim() || env.AWS_ENDPOINT_URL?.trim();
  return value === '' ? undefined : value;
}

/** What every client shares: the region (`AWS_REGION`, else the SDK's own chain), credentials, attempts. */
export function commonConfig(env: Env, options: AwsClientOptions): { region?: string; credentials?: AwsClientOptions['credentials']; maxAttempts: number } {
  const region = env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim() || undefined;
  return {
    ...(region === undefined ? {} : { region }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    maxAttempts: options.maxAttempts ?? 3,
  };
}

/**
 * The SNS and DynamoDB clients from the environment, with the standard
 * endpoint overrides `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_SNS` / `_DYNAMODB`
 * (how the tests reach fauxqs and dynalite).
 */
export function createPublishClients(env: Env, options: AwsClientOptions = {}): PublishClients {
  const common = commonConfig(env, options);
  const snsEndpoint = endpointFor(env, 'SNS');
  const dynamoEndpoint = endpointFor(env, 'DYNAMODB');
  return {
    sns: new SNSClient({ ...common, ...(snsEndpoint ? { endpoint: snsEndpoint } : {}), requestHandler: requestHandler(REQUEST_TIMEOUT_MS.sns) }),
    dynamo: new DynamoDBClient({ ...common, ...(dynamoEndpoint ? { endpoint: dynamoEndpoint } : {}), requestHandler: requestHandler(REQUEST_TIMEOUT_MS.dynamo) }),
  };
}
