import type { Logger } from '../shared/log';
import type { Env } from '../shared/settings';
import type { FetchLike } from './node-id';

/**
 * Why this exists: on a deploy or a scale-in, ECS first deregisters the task
 * from the load balancer, waits out the deregistration delay (after which the
 * ALB cuts whatever streams remain), and only then sends SIGTERM ("Amazon ECS
 * waits for the load balancer to report that the ... target is in an UNUSED
 * state", ECS developer guide, load-balancer-connection-draining). A drain
 * started by SIGTERM would find its streams already cut, all at once. But the
 * task's desired status turns STOPPED as soon as ECS decides to stop it, and
 * the task metadata endpoint shows that: watching it starts the drain while the
 * ALB is still deregistering, so streams close spread out, with `retry:`.
 */
export interface StopWatchOptions {
  /** @default 5000 */
  readonly intervalMs?: number;
  readonly log: Logger;
  readonly fetchImpl?: FetchLike;
}

/** How often the metadata endpoint is asked; the drain window given to the node leaves this much room. */
export const STOP_POLL_MS = 5_000;

/**
 * Polls `${ECS_CONTAINER_METADATA_URI_V4}/task` and calls `onStop` once, when
 * its `DesiredStatus` is `STOPPED`. Returns a function that stops polling, or
 * undefined outside ECS.
 */
export function watchForEcsStop(env: Env, onStop: () => void, options: StopWatchOptions): (() => void) | undefined {
  const base = env.ECS_CONTAINER_METADATA_URI_V4?.trim();
  if (!base) return undefined;
  const url = `${base.replace(/\/+$/, '')}/task`;
  const fetchImpl: FetchLike = options.fetchImpl ?? fetch;
  let stopped = false;
  let failures = 0;
  const check = async (): Promise<void> => {
    try {
      const response = await fetchImpl(url, { signal: AbortSignal.timeout(2_000) });
      if (!response.ok) throw new Error(`task metadata answered ${response.status}`);
      const body = await response.json();
      failures = 0;
      const desired = typeof body === 'object' && body !== null && 'DesiredStatus' in body ? body.DesiredStatus : undefined;
      if (desired === 'STOPPED' && !stopped) {
        stopped = true;
        clearInterval(timer);
        options.log.info('node.stop_requested', { source: 'ecs_task_metadata' });
        onStop();
      }
    } catch (error) {
      // SIGTERM still drains if this never works; say so once, not every poll.
      if (failures++ === 0) options.log.warn('node.stop_watch_failed', { error });
    }
  };
  const timer = setInterval(() => void check(), options.intervalMs ?? STOP_POLL_MS);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
