/**
 * Shared pieces of the port contract suites: the per-test context handed to
 * every adapter factory, a clock the test moves by hand, valid events and
 * connection records, and an inbox that records what a bus node receives.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, expect, it as vitestIt, onTestFinished } from 'vitest';
import type { BusHandler, BusMessage } from '../../services/ports/bus';
import type { Clock } from '../../services/ports/clock';
import type { ConnectionRecord } from '../../services/ports/owners';
import { parseEnvelope, type HeraldEvent } from '../../services/protocol/envelope';
import { eventIdTimeMs, newEventId } from '../../services/protocol/event-id';
import { withDeadline } from '../../scripts/fleet/deadline';

/**
 * Every wait in a contract suite. Generous because networked adapters (SQS
 * long polls, DynamoDB round trips) are slower; a passing test never waits it out.
 */
export const DEADLINE_MS = 5_000;

/** A clock that only moves when the test says so. `now` is a plain function, so it can be passed as a `Clock`. */
export interface ManualClock {
  readonly now: Clock;
  advance(ms: number): void;
}

/**
 * Starts at the newest id this process has minted (`newEventId` never goes
 * backwards, even when asked for an earlier time), so ids built from this clock
 * carry exactly its time, however far earlier tests moved theirs.
 */
export function manualClock(startMs: number = eventIdTimeMs(newEventId())): ManualClock {
  let nowMs = startMs;
  return {
    now: () => nowMs,
    advance(ms: number): void {
      if (!(ms >= 0)) throw new Error(`a clock only moves forward; got ${ms} ms`);
      nowMs += ms;
    },
  };
}

/** What each factory receives, once per test. */
export interface ContractContext {
  /**
   * Unique per test, `[a-z0-9-]`, at most 24 characters: a table name or queue
   * prefix on a shared emulator, so tests never see each other's state.
   */
  readonly prefix: string;
  /** The adapters' clock. The suite moves it to expire records, events and rate windows. */
  readonly clock: ManualClock;
  /** The running test's full name, for the factory's logs. */
  readonly testName: string;
}

let contextSequence = 0;

export function newContractContext(): ContractContext {
  contextSequence += 1;
  return {
    prefix: `ct-${randomBytes(4).toString('hex')}-${contextSequence}`,
    clock: manualClock(),
    testName: expect.getState().currentTestName ?? 'outside a test',
  };
}

/** How one adapter runs a contract suite. */
export interface ContractOptions {
  /**
   * Exact titles of tests this adapter is known to fail, each for a reported
   * bug. They run as `it.fails`, so the fix turns them red until the title is
   * removed from this list.
   */
  readonly knownFailures?: readonly string[];
}

export type ContractIt = (title: string, body: () => Promise<void>, modifiers?: { readonly skip?: boolean }) => void;

/**
 * The `it` of a contract suite, called inside its top `describe`: known failures
 * run as `it.fails`, and once the suite has run, a known failure that named no
 * test fails it, so a renamed test cannot hide behind a stale entry.
 */
export function contractIt(options: ContractOptions): ContractIt {
  const pending = new Set(options.knownFailures ?? []);
  // Nested describes are collected after this one's body, so check when the tests have run.
  afterAll(() => {
    if (pending.size > 0) throw new Error(`knownFailures names no test: ${[...pending].join(' | ')}`);
  });
  return (title, body, modifiers = {}) => {
    if (modifiers.skip === true) vitestIt.skip(title, body);
    else if (pending.delete(title)) vitestIt.fails(title, body);
    else vitestIt(title, body);
  };
}

/** What every factory hands back besides its adapter(s). */
export interface Cleanup {
  /**
   * Removes what the factory made around the adapters (tables, queues, servers).
   * Called once after the suite has closed every adapter it was given, so it
   * must not depend on them being open.
   */
  cleanup(): Promise<void>;
}

/**
 * Runs the factory for the current test and schedules, for when the test ends,
 * `closeAdapters` then the fixture's `cleanup`, whether the test passed or not.
 */
export async function setUp<F extends Cleanup>(
  create: (context: ContractContext) => Promise<F>,
  closeAdapters: (fixture: F) => Promise<unknown>,
): Promise<{ readonly context: ContractContext; readonly fixture: F }> {
  const context = newContractContext();
  const fixture = await create(context);
  onTestFinished(async () => {
    try {
      await closeAdapters(fixture);
    } finally {
      await fixture.cleanup();
    }
  });
  return { context, fixture };
}

/**
 * Data that has broken message buses before: emoji (astral plane, surrogate
 * pairs in UTF-16), combining marks, right-to-left text, CJK, quotes,
 * backslashes, escaped control characters, and U+2028/U+2029, which JSON keeps
 * raw but some JavaScript parsers and log shippers treat as line ends.
 */
export const UNICODE_DATA = {
  text: 'Hello 👋🏽 — “quoted” \'single\' "double" \\ back\\slash',
  scripts: ['中文', 'العربية', 'עברית', 'e\u0301', 'ﬁ', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢'],
  controls: 'tab\tnewline\ncarriage\rnul\u0000bell\u0007',
  separators: 'line\u2028paragraph\u2029end',
  nested: { empty: '', zero: 0, negative: -1.5, yes: true, nothing: null, list: [] },
} as const;

/**
 * Valid JSON that some transports cannot carry verbatim: U+FFFE and U+FFFF are
 * legal in JSON and in a JavaScript string but outside the characters an SQS
 * message body may hold, so an adapter must encode rather than pass them raw.
 */
export const NONCHARACTER_DATA = { text: 'before\uFFFEmiddle\uFFFFafter', bom: '\uFEFF' } as const;

/** A JSON value whose serialization is exactly `bytes` UTF-8 bytes, mostly multi-byte text. */
export function dataOfBytes(bytes: number): { text: string } {
  const frame = JSON.stringify({ text: '' }).length; // ASCII, so characters are bytes
  const unit = 'é👋'; // 2 + 4 bytes
  let text = unit.repeat(Math.floor((bytes - frame) / 6));
  text += 'x'.repeat(bytes - frame - Buffer.byteLength(text));
  const data = { text };
  if (Buffer.byteLength(JSON.stringify(data)) !== bytes) throw new Error(`dataOfBytes(${bytes}) is off`);
  return data;
}

export interface EventSpec {
  /** A JSON value; serialized as a publisher's envelope would be. Default: a counter and a greeting. */
  readonly data?: unknown;
  readonly event?: string;
  /** Default one hour, as the envelope's. */
  readonly ttlSeconds?: number;
  /** Supply one to replay a publisher-chosen id (an idempotent retry, or ids appended out of order). */
  readonly id?: string;
}

/**
 * Builds valid events the way a publisher does: through `parseEnvelope`, with
 * a real id from `newEventId` at the clock's time. Successive ids ascend.
 */
export class EventBuilder {
  private sequence = 0;

  constructor(private readonly clock: ManualClock) {}

  /** An event for these users. */
  to(users: readonly string[], spec: EventSpec = {}): HeraldEvent {
    return this.build({ users: [...users] }, spec);
  }

  /** A broadcast. */
  toAll(spec: EventSpec = {}): HeraldEvent {
    return this.build({ all: true }, spec);
  }

  /** A fresh id at the clock's time, greater than every id built before. */
  nextId(): string {
    return newEventId(this.clock.now());
  }

  private build(to: unknown, spec: EventSpec): HeraldEvent {
    this.sequence += 1;
    const nowMs = this.clock.now();
    return parseEnvelope(
      {
        id: spec.id ?? newEventId(nowMs),
        to,
        event: spec.event ?? 'message',
        data: spec.data ?? { n: this.sequence, text: 'Hello 👋' },
        ttl: spec.ttlSeconds ?? 3600,
      },
      { nowMs, maxDataBytes: 256 * 1024 },
    );
  }
}

let connectionSequence = 0;

/** A connection record as a node writes it: connected now, alive for `ttlMs`. */
export function connectionRecord(clock: ManualClock, userId: string, nodeId: string, ttlMs = 60_000): ConnectionRecord {
  connectionSequence += 1;
  const now = clock.now();
  return { userId, connectionId: `conn-${connectionSequence}`, nodeId, connectedAtMs: now, expiresAtMs: now + ttlMs };
}

/** A stable key per message, so a test can dedupe (delivery is at least once) and look for one. */
export function messageKey(message: BusMessage): string {
  if (message.kind === 'deliver') return `deliver:${message.events.map((e) => e.id).join(',')}`;
  return message.kind === 'replace' ? `replace:${message.connectionId}` : 'drain';
}

interface Waiter {
  readonly key: string;
  readonly resolve: (message: BusMessage) => void;
}

/**
 * Everything one bus node received, in arrival order. `handler` is what the
 * test passes to `start`; `react` runs after the message is recorded, and its
 * rejection becomes the handler's.
 */
export class Inbox {
  readonly messages: BusMessage[] = [];
  private waiters: Waiter[] = [];

  constructor(
    readonly label: string,
    private readonly react?: (message: BusMessage) => Promise<void>,
  ) {}

  readonly handler: BusHandler = async (message) => {
    this.messages.push(message);
    const key = messageKey(message);
    const ready = this.waiters.filter((w) => w.key === key);
    this.waiters = this.waiters.filter((w) => w.key !== key);
    for (const waiter of ready) waiter.resolve(message);
    if (this.react) await this.react(message);
  };

  /** Distinct keys received, in first-arrival order (a redelivered message counts once). */
  keys(): string[] {
    return [...new Set(this.messages.map(messageKey))];
  }

  has(message: BusMessage): boolean {
    const key = messageKey(message);
    return this.messages.some((m) => messageKey(m) === key);
  }

  /** The first copy of `message` to arrive; resolves at once if it already has. */
  waitFor(message: BusMessage, what = messageKey(message)): Promise<BusMessage> {
    const key = messageKey(message);
    const arrived = this.messages.find((m) => messageKey(m) === key);
    if (arrived) return Promise.resolve(arrived);
    const promise = new Promise<BusMessage>((resolve) => this.waiters.push({ key, resolve }));
    return withDeadline(promise, DEADLINE_MS, `${what} on ${this.label}`);
  }

  waitForAll(messages: readonly BusMessage[], what: string): Promise<BusMessage[]> {
    return Promise.all(messages.map((m, i) => this.waitFor(m, `${what} #${i + 1} (${messageKey(m)})`)));
  }
}
