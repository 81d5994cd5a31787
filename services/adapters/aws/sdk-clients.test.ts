import { afterEach, describe, expect, it } from 'vitest';
import { createAwsClients, type AwsClients } from './sdk-clients';
import type { Env } from '../../shared/settings';

const CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };
let made: AwsClients[] = [];

function clients(env: Env): AwsClients {
  const c = createAwsClients(env, { credentials: CREDENTIALS });
  made.push(c);
  return c;
}

afterEach(() => {
  for (const c of made) for (const client of [c.sns, c.sqs, c.dynamo]) client.destroy();
  made = [];
});

async function endpointOf(client: { config: { endpoint?: () => Promise<{ hostname: string; port?: number | undefined }> } }): Promise<string | undefined> {
  const endpoint = await client.config.endpoint?.();
  return endpoint ? `${endpoint.hostname}:${endpoint.port ?? ''}` : undefined;
}

describe('createAwsClients', () => {
  it('points every client at AWS_ENDPOINT_URL, a per-service variable winning over it', async () => {
    const c = clients({ AWS_REGION: 'eu-west-1', AWS_ENDPOINT_URL: 'http://127.0.0.1:4000', AWS_ENDPOINT_URL_SQS: 'http://127.0.0.1:4001' });
    expect(await endpointOf(c.sns)).toBe('127.0.0.1:4000');
    expect(await endpointOf(c.sqs)).toBe('127.0.0.1:4001');
    expect(await endpointOf(c.dynamo)).toBe('127.0.0.1:4000');
    expect(await c.sqs.config.region()).toBe('eu-west-1');
  });

  it('keeps SQS calls on the overridden endpoint instead of the host in each QueueUrl', () => {
    expect(clients({ AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL_SQS: 'http://127.0.0.1:4001' }).sqs.config.useQueueUrlAsEndpoint).toBe(false);
  });

  it('leaves the AWS endpoints alone without overrides, or when AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true', async () => {
    for (const env of [{ AWS_REGION: 'us-east-1' }, { AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: 'http://127.0.0.1:4000', AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' }]) {
      const c = clients(env);
      expect(await endpointOf(c.sqs)).toBeUndefined();
      expect(await endpointOf(c.sns)).toBeUndefined();
      expect(c.sqs.config.useQueueUrlAsEndpoint).toBe(true);
    }
  });

  it('retries each call up to 3 attempts by default', async () => {
    expect(await clients({ AWS_REGION: 'us-east-1' }).sns.config.maxAttempts()).toBe(3);
  });
});
