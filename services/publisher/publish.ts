import { BusBatchError, type BusEntry, type BusSender, type BusTarget } from '../ports/bus';
import type { AppendResult, History } from '../ports/history';
import type { Owners } from '../ports/owners';
import type { RateLimiter } from '../ports/rate-limiter';
import type { HeraldEvent } from '../protocol/envelope';
import { HeraldError } from '../protocol/errors';

/** Exactly what publishing calls on each port, so a publisher needs no receiving bus, no claims, no replay. */
export interface PublishDeps {
  readonly history: Pick<History, 'appendBatch'>;
  readonly owners: Pick<Owners, 'locate'>;
  readonly bus: Pick<BusSender, 'sendBatch'>;
  /** Per-publisher budget; absent means unlimited (e.g. a trusted in-process caller). */
  readonly limiter?: Pick<RateLimiter, 'take'>;
}

export interface PublishResult {
  readonly id: string;
  /** How many users it was addressed to, or `'all'` for a broadcast. */
  readonly recipients: number | 'all';
  /** Recipients with an open stream when it was published (null for broadcasts). */
  readonly online: number | null;
  /** Recipients without one: the users to reach by e-mail or mobile push instead. */
  readonly offline: readonly string[];
  /** The id was already in history (a retried publish): it was delivered again, not stored twice. */
  readonly duplicate: boolean;
}

/**
 * Past this many owning nodes one message to every node is cheaper than one
 * per node; every node drops the users it does not hold.
 */
export const MAX_TARGETED_NODES = 8;

/**
 * What the attempts of one publish call have completed, so a retry
 * (`publishWithRetry`) repeats none of it: the budget is charged once, a batch
 * that was stored is not stored again (its `duplicate` flags stay what the
 * first append said), and a delivery the bus accepted is not sent twice.
 * Owners are looked up afresh on every attempt: that is the presence the
 * answer reports, and where the deliveries still to send must go.
 */
export class PublishProgress {
  charged = false;
  appended: readonly AppendResult[] | undefined;
  /** Deliveries the bus accepted, as `<event index>@<target>`. */
  readonly sent = new Set<string>();
}

export interface PublishOptions {
  /** The events came as a batch: a fault names the failing index even in a batch of one. */
  readonly batch?: boolean;
  /** Shared by the attempts of one call; @default a fresh one (a single attempt) */
  readonly progress?: PublishProgress;
}

/**
 * Publishes validated events, for one publisher, in a bounded number of
 * round trips per stage whatever the batch size: one budget take, the
 * history writes of the whole batch (`appendBatch`), one owners lookup for
 * every recipient, and the deliveries packed per target node (`sendBatch`).
 *
 * The order of the stages is the delivery rule of docs/architecture.md ("The
 * delivery-ordering rule"), for the batch as a whole: every history write of
 * the batch completes before owners are looked up, and a node claims
 * ownership before it reads the replay. Whichever of the two a reconnecting
 * tab sees second, it gets the event: either the lookup finds the new stream,
 * or the replay finds the event. Do not reorder these awaits.
 */
export async function publish(
  events: readonly HeraldEvent[],
  deps: PublishDeps,
  publisherId: string,
  options: PublishOptions = {},
): Promise<PublishResult[]> {
  const progress = options.progress ?? new PublishProgress();
  const fail = (error: unknown, index: number): unknown => (options.batch === true || events.length > 1 ? atIndex(error, index) : error);

  if (deps.limiter && !progress.charged) {
    const decision = await deps.limiter.take(publisherId, events.length);
    if (!decision.allowed) {
      throw new HeraldError('rate_limited', 'publish rate exceeded for this publisher', { retryAfterMs: decision.retryAfterMs });
    }
    progress.charged = true;
  }

  if (progress.appended === undefined) {
    try {
      progress.appended = await deps.history.appendBatch(events);
    } catch (error) {
      throw fail(error, 0);
    }
  }
  const appended = progress.appended;

  const users = new Set<string>();
  for (const event of events) if ('users' in event.to) for (const user of event.to.users) users.add(user);
  let located: ReadonlyMap<string, readonly string[]> = new Map();
  if (users.size > 0) {
    try {
      located = await deps.owners.locate([...users]);
    } catch (error) {
      throw fail(error, 0);
    }
  }

  // Users offline now get nothing live; if they reconnect with a position, the replay has the event.
  const deliveries = planDeliveries(events, located, (key) => progress.sent.has(key));
  try {
    if (deliveries.length > 0) await deps.bus.sendBatch(deliveries.map((d) => d.entry));
    for (const d of deliveries) for (const key of d.keys) progress.sent.add(key);
  } catch (error) {
    const failed = error instanceof BusBatchError ? new Set(error.failed) : undefined;
    deliveries.forEach((d, i) => {
      if (failed && !failed.has(i)) for (const key of d.keys) progress.sent.add(key);
    });
    const unsent = deliveries.filter((_, i) => failed === undefined || failed.has(i)).flatMap((d) => d.indices);
    throw fail(error, unsent.length === 0 ? 0 : Math.min(...unsent));
  }

  return events.map((event, i) => {
    const duplicate = appended[i]?.duplicate ?? false;
    if ('all' in event.to) return { id: event.id, recipients: 'all', online: null, offline: [], duplicate };
    const eventUsers = event.to.users;
    const offline = eventUsers.filter((u) => !located.has(u));
    return { id: event.id, recipients: eventUsers.length, online: eventUsers.length - offline.length, offline, duplicate };
  });
}

/** One bus message of a plan: its entry, the events it carries (indices), and their delivery keys. */
interface Delivery {
  readonly entry: BusEntry;
  readonly indices: readonly number[];
  readonly keys: readonly string[];
}

const targetKey = (target: BusTarget): string => (target === 'all' ? 'all' : `node:${target.node}`);

/**
 * The bus messages for a batch: per owning node, the events with a recipient
 * on it, in batch order and addressed only to its users, so one node's
 * message is the same size whatever the fan-out elsewhere. A batch with a
 * broadcast, or an event whose recipients sit on more than
 * MAX_TARGETED_NODES nodes, goes as one message to every node instead, so a
 * user's events still reach the node in the order given (events in separate
 * messages are ordered only best effort on a networked bus).
 */
function planDeliveries(events: readonly HeraldEvent[], located: ReadonlyMap<string, readonly string[]>, sent: (key: string) => boolean): Delivery[] {
  const perNode = new Map<string, { indices: number[]; events: HeraldEvent[] }>();
  let everywhere = false;
  const online: number[] = [];
  for (const [index, event] of events.entries()) {
    if ('all' in event.to) {
      everywhere = true;
      online.push(index);
      continue;
    }
    const byNode = new Map<string, string[]>();
    for (const user of event.to.users) {
      for (const node of located.get(user) ?? []) {
        const list = byNode.get(node);
        if (list) list.push(user);
        else byNode.set(node, [user]);
      }
    }
    if (byNode.size === 0) continue;
    online.push(index);
    if (byNode.size > MAX_TARGETED_NODES) everywhere = true;
    for (const [node, nodeUsers] of byNode) {
      if (sent(`${index}@${targetKey({ node })}`)) continue;
      let group = perNode.get(node);
      if (!group) perNode.set(node, (group = { indices: [], events: [] }));
      group.indices.push(index);
      group.events.push({ ...event, to: { users: nodeUsers } });
    }
  }
  if (everywhere) {
    const key = targetKey('all');
    const unsent = online.filter((i) => !sent(`${i}@${key}`));
    if (unsent.length === 0) return [];
    return [
      {
        entry: { message: { kind: 'deliver', events: unsent.map((i) => events[i]!) }, target: 'all' },
        indices: unsent,
        keys: unsent.map((i) => `${i}@${key}`),
      },
    ];
  }
  return [...perNode].map(([node, group]) => {
    const target: BusTarget = { node };
    const key = targetKey(target);
    return { entry: { message: { kind: 'deliver', events: group.events }, target }, indices: group.indices, keys: group.indices.map((i) => `${i}@${key}`) };
  });
}

/**
 * A fault part-way through a batch: the notifications before `index` were
 * published, from `index` on they may or may not have been. Saying where is
 * what lets the caller retry the rest, with the same ids.
 */
function atIndex(error: unknown, index: number): unknown {
  if (!(error instanceof HeraldError)) return error;
  return new HeraldError(error.code, `${error.message} (notifications before index ${index} were published)`, { ...error.details, index });
}
