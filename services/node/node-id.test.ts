import { describe, expect, it } from 'vitest';
import { createLogger } from '../shared/log';
import { ConfigError } from '../shared/settings';
import { resolveNodeId, type FetchLike } from './node-id';

const METADATA = 'http://169.254.170.2/v4/0123abcd-task';
const TASK_ARN = 'arn:aws:ecs:eu-west-1:123456789012:task/herald-cluster/0f1e2d3c4b5a69788796a5b4c3d2e1f0';

interface Call {
  readonly url: string;
  readonly signal: AbortSignal;
}

/** A fetch that records its calls and answers `body` (or fails as told). */
function fakeFetch(answer: { status?: number; body?: unknown; fail?: Error; hang?: boolean }): { fetch: FetchLike; calls: Call[] } {
  const calls: Call[] = [];
  const fetch: FetchLike = (url, init) => {
    calls.push({ url, signal: init.signal });
    if (answer.fail) return Promise.reject(answer.fail);
    if (answer.hang === true) {
      return new Promise((_, reject) => init.signal.addEventListener('abort', () => reject(new Error('aborted'))));
    }
    const status = answer.status ?? 200;
    return Promise.resolve({ ok: status < 300, status, json: () => Promise.resolve(answer.body) });
  };
  return { fetch, calls };
}

function recordingLog(): { log: ReturnType<typeof createLogger>; events: string[] } {
  const events: string[] = [];
  const log = createLogger({ sink: (line) => events.push((JSON.parse(line) as { event: string }).event) });
  return { log, events };
}

describe('resolveNodeId', () => {
  it('uses HERALD_NODE_ID when set, without asking the metadata endpoint', async () => {
    const { fetch, calls } = fakeFetch({ body: { TaskARN: TASK_ARN } });
    expect(await resolveNodeId({ HERALD_NODE_ID: ' node-7 ', ECS_CONTAINER_METADATA_URI_V4: METADATA }, fetch)).toBe('node-7');
    expect(calls).toEqual([]);
  });

  it('refuses a HERALD_NODE_ID that cannot name a queue, naming the variable', async () => {
    for (const bad of ['node.7', 'a'.repeat(41), 'all']) {
      const error: unknown = await resolveNodeId({ HERALD_NODE_ID: bad }, fakeFetch({}).fetch).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).variable).toBe('HERALD_NODE_ID');
    }
  });

  it('takes the ECS task id from the last segment of the TaskARN at <metadata>/task', async () => {
    const { fetch, calls } = fakeFetch({ body: { TaskARN: TASK_ARN, Cluster: 'herald-cluster' } });
    expect(await resolveNodeId({ ECS_CONTAINER_METADATA_URI_V4: METADATA + '/' }, fetch)).toBe('0f1e2d3c4b5a69788796a5b4c3d2e1f0');
    expect(calls.map((c) => c.url)).toEqual([`${METADATA}/task`]);
  });

  it('accepts the older ARN form without a cluster', async () => {
    const { fetch } = fakeFetch({ body: { TaskARN: 'arn:aws:ecs:us-east-1:123456789012:task/2f7c1d8e-1b3a-4c5d-9e8f-0a1b2c3d4e5f' } });
    expect(await resolveNodeId({ ECS_CONTAINER_METADATA_URI_V4: METADATA }, fetch)).toBe('2f7c1d8e-1b3a-4c5d-9e8f-0a1b2c3d4e5f');
  });

  it('falls back to a random id, and says why, when the metadata answer is unusable', async () => {
    const answers = [
      { status: 500 },
      { body: { Cluster: 'no arn' } },
      { body: { TaskARN: 'arn:aws:ecs:us-east-1:1:task/c/not.a.node.id' } },
      { body: 'text' },
      { fail: new Error('connect ECONNREFUSED') },
    ];
    for (const answer of answers) {
      const { log, events } = recordingLog();
      expect(await resolveNodeId({ ECS_CONTAINER_METADATA_URI_V4: METADATA }, fakeFetch(answer).fetch, { log })).toMatch(/^n-[0-9a-f]{12}$/);
      expect(events).toEqual(['node.task_id_unavailable']);
    }
  });

  it('gives up on a metadata endpoint that does not answer within the timeout', async () => {
    const { fetch, calls } = fakeFetch({ hang: true });
    const started = Date.now();
    expect(await resolveNodeId({ ECS_CONTAINER_METADATA_URI_V4: METADATA }, fetch, { timeoutMs: 50 })).toMatch(/^n-[0-9a-f]{12}$/);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(calls[0]?.signal.aborted).toBe(true);
  });

  it('makes a random n-<12 hex> id outside ECS, different each time', async () => {
    const { fetch, calls } = fakeFetch({});
    const ids = await Promise.all([resolveNodeId({}, fetch), resolveNodeId({ HERALD_NODE_ID: '  ' }, fetch)]);
    for (const id of ids) expect(id).toMatch(/^n-[0-9a-f]{12}$/);
    expect(ids[0]).not.toBe(ids[1]);
    expect(calls).toEqual([]);
  });
});
