import { randomBytes } from 'node:crypto';
import { isNodeId } from '../protocol/bus-message';
import type { Logger } from '../shared/log';
import { ConfigError, type Env } from '../shared/settings';

export type FetchLike = (url: string, init: { signal: AbortSignal }) => Promise<{ ok: boolean; status: number; json(): Promise<unknown> }>;

export interface NodeIdOptions {
  /** The metadata endpoint answers in milliseconds; a start must not hang on it. @default 1000 */
  readonly timeoutMs?: number;
  readonly log?: Logger;
}

/**
 * This node's id, which names its queue (`<prefix>_<nodeId>`) and routes its
 * messages: `HERALD_NODE_ID` when set; on ECS the task id, so a queue left by a
 * crashed task can be matched to it; otherwise a random one.
 */
export async function resolveNodeId(env: Env, fetchImpl: FetchLike = fetch, options: NodeIdOptions = {}): Promise<string> {
  const configured = env.HERALD_NODE_ID?.trim();
  if (configured) {
    if (!isNodeId(configured)) throw new ConfigError('HERALD_NODE_ID', 'is 1-40 characters of A-Z a-z 0-9 _ - (and not "all")');
    return configured;
  }
  const metadataUri = env.ECS_CONTAINER_METADATA_URI_V4?.trim();
  if (metadataUri) {
    try {
      return await ecsTaskId(metadataUri, fetchImpl, options.timeoutMs ?? 1_000);
    } catch (error) {
      // A random id works as well; the janitor then matches the queue by heartbeat only.
      options.log?.warn('node.task_id_unavailable', { error });
    }
  }
  return `n-${randomBytes(6).toString('hex')}`;
}

/** Task metadata v4: `GET ${ECS_CONTAINER_METADATA_URI_V4}/task` → `TaskARN` `arn:aws:ecs:<region>:<account>:task/<cluster>/<taskId>`. */
async function ecsTaskId(metadataUri: string, fetchImpl: FetchLike, timeoutMs: number): Promise<string> {
  const response = await fetchImpl(`${metadataUri.replace(/\/+$/, '')}/task`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`task metadata answered ${response.status}`);
  const body = await response.json();
  const arn = typeof body === 'object' && body !== null && 'TaskARN' in body ? body.TaskARN : undefined;
  if (typeof arn !== 'string') throw new Error('task metadata has no TaskARN');
  const taskId = arn.slice(arn.lastIndexOf('/') + 1);
  if (!isNodeId(taskId)) throw new Error(`task id "${taskId}" is not a usable node id`);
  return taskId;
}
