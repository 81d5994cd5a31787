import type { Ports } from '../../services/node/compose';
import type { Bus, BusMessage } from '../../services/ports/bus';
import type { History } from '../../services/ports/history';
import type { Owners } from '../../services/ports/owners';
import { withDeadline } from '../../scripts/fleet/deadline';

/**
 * A one-shot barrier for deterministic interleavings: a port hook `pass()`es
 * it, which marks it reached and waits until the test `open()`s it. After
 * that, calls go through.
 */
export class Gate {
  /** Calls that reached the gate, before or after it opened. */
  calls = 0;
  private readonly arrived: Promise<void>;
  private readonly opened: Promise<void>;
  private arrive: () => void = () => undefined;
  private release: () => void = () => undefined;

  constructor(readonly label: string) {
    this.arrived = new Promise<void>((resolve) => (this.arrive = resolve));
    this.opened = new Promise<void>((resolve) => (this.release = resolve));
  }

  /** For the gated code (a PortRig hook): waits until the test opens the gate. */
  readonly pass = (): Promise<void> => {
    this.calls++;
    this.arrive();
    return this.opened;
  };

  open(): void {
    this.release();
  }

  /** Resolves once a call is parked at the gate; fails, naming the gate, after `timeoutMs`. */
  reached(timeoutMs = 5000): Promise<void> {
    return withDeadline(this.arrived, timeoutMs, `a call to reach the gate ${this.label}`);
  }
}

export type Op = 'history.append' | 'history.since' | 'owners.claim' | 'owners.locate' | 'bus.send';

/** One call into a port: the event it carries (append, send) or the user it is about (since, claim). */
export interface PortCall {
  readonly op: Op;
  /** The event of a one-event call (a batch of one included). */
  readonly eventId?: string;
  /** Every event a batch call carries (`appendBatch`, `sendBatch`), in order. */
  readonly eventIds?: readonly string[];
  readonly userId?: string;
}

export interface TraceEntry extends PortCall {
  readonly phase: 'start' | 'end' | 'fail';
}

type Hook = (call: PortCall) => void | Promise<void>;

interface Armed {
  readonly when: 'before' | 'after';
  readonly op: Op;
  readonly match: (call: PortCall) => boolean;
  readonly hook: Hook;
}

/**
 * Wraps a node's memory History, Owners and Bus (pass `rig.wrap` as
 * startTestNode's `ports`), records every call in `trace`, and runs hooks armed
 * by the test: a Gate's `pass` to hold a call, or a throw to make it fail. A
 * hook `before` runs before the adapter sees the call; `after` runs once the
 * adapter has answered (its result is fixed) but before the caller gets it.
 */
export class PortRig {
  readonly trace: TraceEntry[] = [];
  private armed: Armed[] = [];

  /** Arms `hook` for the next call of `op` matching `match` (every call by default); it fires once. */
  once(when: 'before' | 'after', op: Op, hook: Hook, match: (call: PortCall) => boolean = () => true): void {
    this.armed.push({ when, op, hook, match });
  }

  /** The entries of one op, e.g. to see that `owners.locate` was never called. */
  calls(op: Op, phase: TraceEntry['phase'] = 'start'): TraceEntry[] {
    return this.trace.filter((e) => e.op === op && e.phase === phase);
  }

  /** Position in `trace` of the first entry matching, or -1. */
  indexOf(op: Op, phase: TraceEntry['phase'], eventId?: string): number {
    return this.trace.findIndex((e) => e.op === op && e.phase === phase && (eventId === undefined || e.eventId === eventId));
  }

  readonly wrap = (defaults: Ports): Ports => ({
    ...defaults,
    history: this.wrapHistory(defaults.history),
    owners: this.wrapOwners(defaults.owners),
    bus: this.wrapBus(defaults.bus),
  });

  private wrapHistory(inner: History): History {
    return {
      append: (event) => this.around({ op: 'history.append', eventId: event.id, eventIds: [event.id] }, () => inner.append(event)),
      appendBatch: (events) => this.around(batchCall('history.append', events.map((e) => e.id)), () => inner.appendBatch(events)),
      since: (userId, lastEventId, limit) => this.around({ op: 'history.since', userId }, () => inner.since(userId, lastEventId, limit)),
      close: () => inner.close(),
    };
  }

  private wrapOwners(inner: Owners): Owners {
    return {
      claim: (record, policy) => this.around({ op: 'owners.claim', userId: record.userId }, () => inner.claim(record, policy)),
      release: (userId, connectionId) => inner.release(userId, connectionId),
      heartbeat: (nodeId, expiresAtMs) => inner.heartbeat(nodeId, expiresAtMs),
      locate: (userIds) => this.around({ op: 'owners.locate' }, () => inner.locate(userIds)),
      close: () => inner.close(),
    };
  }

  private wrapBus(inner: Bus): Bus {
    return {
      start: (nodeId, onMessage, onMissed) => inner.start(nodeId, onMessage, onMissed),
      send: (message, target) => this.around(sendCall([message]), () => inner.send(message, target)),
      sendBatch: (entries) => this.around(sendCall(entries.map((e) => e.message)), () => inner.sendBatch(entries)),
      close: () => inner.close(),
    };
  }

  private async around<T>(call: PortCall, inner: () => Promise<T>): Promise<T> {
    this.trace.push({ ...call, phase: 'start' });
    try {
      await this.fire('before', call);
      const result = await inner();
      await this.fire('after', call);
      this.trace.push({ ...call, phase: 'end' });
      return result;
    } catch (error) {
      this.trace.push({ ...call, phase: 'fail' });
      throw error;
    }
  }

  private async fire(when: Armed['when'], call: PortCall): Promise<void> {
    const index = this.armed.findIndex((a) => a.when === when && a.op === call.op && a.match(call));
    if (index < 0) return;
    const [armed] = this.armed.splice(index, 1);
    await armed?.hook(call);
  }
}

function batchCall(op: Op, eventIds: readonly string[]): PortCall {
  return { op, eventIds, ...(eventIds.length === 1 ? { eventId: eventIds[0] } : {}) };
}

/** A send of deliveries names their events; a send of one `replace` names its user. */
function sendCall(messages: readonly BusMessage[]): PortCall {
  const [only] = messages;
  if (messages.length === 1 && only?.kind === 'replace') return { op: 'bus.send', userId: only.userId };
  return batchCall('bus.send', messages.flatMap((m) => (m.kind === 'deliver' ? m.events.map((e) => e.id) : [])));
}
