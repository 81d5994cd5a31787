/**
 * The load client processes, seen from the bench: starts them, splits the
 * users between them, and merges what they report.
 *
 * One process may hold at most 20,000 open files here, and one source address
 * has about 28,000 ephemeral ports towards one server port: so the streams are
 * spread over several processes, each bound to its own 127.0.0.x.
 */
import { join } from 'node:path';
import type { ClientReport, OpenResult, StreamSpec } from './ipc';
import { IpcChild } from './processes';
import { LatencyHistogram } from './stats';

/** Streams one client process may hold (it also needs a few files of its own). */
export const MAX_STREAMS_PER_CLIENT = 15_000;

export interface OpenSummary {
  /** User numbers whose stream reached `ready`, each owned by one client. */
  readonly opened: number[];
  readonly failures: Record<string, number>;
  readonly wallMs: number;
}

export interface TagTotal {
  readonly count: number;
  readonly lastArrivalNs: number;
  readonly latency: LatencyHistogram;
}

export interface FleetReport {
  readonly open: number;
  readonly lost: Record<string, number>;
  readonly events: Record<string, number>;
  readonly tags: Record<string, TagTotal>;
  readonly cpuUs: number;
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, n] of Object.entries(from)) into[key] = (into[key] ?? 0) + n;
}

export class ClientFleet {
  private constructor(private readonly clients: readonly IpcChild[]) {}

  static async start(processes: number, buildDir: string): Promise<ClientFleet> {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_OPTIONS;
    const clients = await Promise.all(
      Array.from({ length: processes }, (_, i) =>
        IpcChild.spawn({ label: `load-client ${i + 1}`, args: [join(buildDir, 'load-client.mjs')], env, startTimeoutMs: 20_000 }),
      ),
    );
    return new ClientFleet(clients);
  }

  get size(): number {
    return this.clients.length;
  }

  /** Client `i` holds users `u<first>`… from source address 127.0.0.<i+2> (127.0.0.1 is the publisher's). */
  async open(options: { url: string; urls?: readonly string[]; secret: string; connections: number; epochNs: bigint; concurrency: number; stream?: StreamSpec }): Promise<OpenSummary> {
    const per = Math.ceil(options.connections / this.clients.length);
    const started = performance.now();
    const results = await Promise.all(
      this.clients.map((client, i) => {
        const first = i * per;
        const count = Math.max(0, Math.min(per, options.connections - first));
        return client.request<OpenResult>(
          'open',
          {
            url: options.url,
            ...(options.urls ? { urls: options.urls } : {}),
            ...(options.stream ? { stream: options.stream } : {}),
            first,
            count,
            localAddress: `127.0.0.${i + 2}`,
            secret: options.secret,
            concurrency: options.concurrency,
            timeoutMs: 30_000,
            epochNs: options.epochNs,
          },
          // Generous: opening is bounded by the per-connection timeout anyway.
          120_000 + count * 50,
        );
      }),
    );
    const failures: Record<string, number> = {};
    for (const result of results) addCounts(failures, result.failures);
    return { opened: results.flatMap((r) => r.opened), failures, wallMs: performance.now() - started };
  }

  /** Each client closes `perClient` of its streams and opens them again with `Last-Event-ID`. */
  async reconnect(perClient: number, concurrency: number): Promise<OpenSummary> {
    const started = performance.now();
    const results = await Promise.all(
      this.clients.map((client) => client.request<OpenResult>('reconnect', { count: perClient, concurrency, timeoutMs: 30_000 }, 120_000 + perClient * 50)),
    );
    const failures: Record<string, number> = {};
    for (const result of results) addCounts(failures, result.failures);
    return { opened: results.flatMap((r) => r.opened), failures, wallMs: performance.now() - started };
  }

  async report(tags: readonly string[]): Promise<FleetReport> {
    const reports = await Promise.all(this.clients.map((client) => client.request<ClientReport>('report', { tags }, 30_000)));
    const merged: FleetReport = { open: 0, lost: {}, events: {}, tags: {}, cpuUs: 0 };
    const totals: Record<string, { count: number; lastArrivalNs: number; latency: LatencyHistogram }> = {};
    for (const tag of tags) totals[tag] = { count: 0, lastArrivalNs: 0, latency: new LatencyHistogram() };
    let open = 0;
    let cpuUs = 0;
    for (const report of reports) {
      open += report.open;
      cpuUs += report.cpuUs;
      addCounts(merged.lost, report.lost);
      addCounts(merged.events, report.events);
      for (const tag of tags) {
        const from = report.tags[tag];
        const into = totals[tag]!;
        if (!from) continue;
        into.count += from.count;
        into.lastArrivalNs = Math.max(into.lastArrivalNs, from.lastArrivalNs);
        into.latency.merge(from.latency);
      }
    }
    return { ...merged, open, cpuUs, tags: totals };
  }

  /**
   * Polls until `expected` events with `tag` were read in all, or nothing new
   * arrived for `quietMs`, or `timeoutMs` passed. Timing comes from the clients'
   * own arrival stamps, so the polling period does not blur it.
   */
  async waitFor(tag: string, expected: number, options: { timeoutMs: number; quietMs: number; pollMs?: number }): Promise<TagTotal> {
    const until = performance.now() + options.timeoutMs;
    let last = -1;
    let lastChangeMs = performance.now();
    for (;;) {
      const total = (await this.report([tag])).tags[tag]!;
      const now = performance.now();
      if (total.count !== last) {
        last = total.count;
        lastChangeMs = now;
      }
      if (total.count >= expected || now > until || now - lastChangeMs > options.quietMs) return total;
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 20));
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.clients.map(async (client) => {
        // Close the sockets first so the node sees FINs, not a flood of resets from a dying process.
        await client.request('close', {}, 10_000).catch(() => undefined);
        await client.stop();
      }),
    );
  }
}
