/**
 * The results, as a table with targets and reference figures beside them
 * (printed, never asserted), and as JSON for machines.
 */
import type { CostResult } from './cost';
import { priceWindow, renderCost } from './cost-report';
import type { BroadcastResult, SustainedResult, UnicastResult } from './phases';
import type { ProfileSummary } from './profile';
import type { MemorySample, NodeBreakdown } from './shape';
import { formatBytes, formatCount, formatUs, markdownTable } from './stats';

export interface BenchResult {
  readonly startedAt: string;
  readonly machine: { readonly cpus: number; readonly node: string; readonly loadAvgBefore: readonly number[]; readonly loadAvgAfter: readonly number[] };
  readonly target: string;
  readonly clients: number;
  readonly connections: {
    readonly requested: number;
    readonly opened: number;
    readonly failures: Record<string, number>;
    readonly openSeconds: number;
    /** Streams that ended during the run, by reason, as the clients saw it. */
    readonly lostDuringRun: Record<string, number>;
    readonly stillOpenAtEnd: number;
  };
  readonly memory: { readonly before: MemorySample; readonly idle: MemorySample; readonly afterSustained: MemorySample };
  /** The server's CPU over the connect phase (from the first stream asked for to the last one ready). */
  readonly connect: { readonly cpuUs: number; readonly systemUs: number | undefined };
  readonly unicast: UnicastResult;
  readonly broadcast: BroadcastResult;
  readonly sustained: SustainedResult;
  /** `--compare`: Herald's sustained phase again with one notification per POST, as Nchan publishes. */
  readonly sustainedSingle?: SustainedResult;
  /** herald_* counters that moved during the measured phases (drops, closes, refusals). */
  readonly nodeCounters: Record<string, number>;
  readonly profile: ProfileSummary | undefined;
  /** How the figures were taken (the shape's notes, sizes left at a shape's defaults). */
  readonly notes?: readonly string[];
  /** A cluster's nodes, from /metrics after the streams opened and at the end. */
  readonly perNode?: { readonly idle: readonly NodeBreakdown[]; readonly end: readonly NodeBreakdown[] };
  /** CPU seconds of the shape's other processes over the run, by name. */
  readonly otherCpuSeconds?: Record<string, number>;
  /** The cost phase (cluster shape): AWS requests and units per notification. */
  readonly cost?: CostResult;
}

interface Row {
  readonly measure: string;
  readonly result: string;
  readonly target: string;
  readonly meets: boolean | undefined;
  readonly nchan: string;
  readonly pushpin: string;
}

const KB = 1000;

function sumValues(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

function describeCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts);
  return entries.length === 0 ? '' : ` (${entries.map(([k, n]) => `${k}: ${n}`).join(', ')})`;
}

export function perConnection(result: BenchResult): { rss: number; heap: number; external: number | undefined } {
  const n = Math.max(1, result.connections.opened);
  const { before, idle } = result.memory;
  return {
    rss: (idle.rss - before.rss) / n,
    heap: (idle.heapUsed - before.heapUsed) / n,
    external: idle.external === undefined || before.external === undefined ? undefined : (idle.external - before.external) / n,
  };
}

function rows(result: BenchResult): Row[] {
  const { connections: c, unicast: u, broadcast: b, sustained: s, memory: m } = result;
  const per = perConnection(result);
  const failed = sumValues(c.failures);
  const gcNote = m.idle.afterGc ? 'after GC' : 'no forced GC';
  const cpuPerDelivery = s.received > 0 ? s.nodeCpuUs / s.received : NaN;
  const broadcastDeliveries = b.reached.reduce((a, n) => a + n, 0);
  const allReached = b.reached.length > 0 && b.reached.every((n) => n >= b.expected);
  const unicastLost = u.sent - u.received;
  const streamsLost = sumValues(c.lostDuringRun);
  return [
    {
      measure: 'connections held',
      result: `${formatCount(c.opened)} / ${formatCount(c.requested)} opened, ${failed} errors${describeCounts(c.failures)}, in ${c.openSeconds.toFixed(1)} s; ${formatCount(c.stillOpenAtEnd)} still open at the end`,
      target: formatCount(c.requested),
      meets: c.opened === c.requested && failed === 0,
      nchan: '',
      pushpin: '',
    },
    {
      measure: 'node RSS per idle connection',
      result: `${formatBytes(per.rss)} (RSS ${formatBytes(m.before.rss)} → ${formatBytes(m.idle.rss)}, ${gcNote})`,
      target: '≤ 16 KB',
      meets: per.rss <= 16 * KB,
      nchan: '≈ 13 KB',
      pushpin: '≈ 46 KB',
    },
    {
      measure: 'node CPU per accepted stream (connect phase)',
      result: `${formatUs(c.opened > 0 ? result.connect.cpuUs / c.opened : NaN)} (${(result.connect.cpuUs / 1e6).toFixed(2)} s node CPU for ${formatCount(c.opened)} streams${result.connect.systemUs === undefined ? '' : `, ${Math.round((100 * result.connect.systemUs) / Math.max(1, result.connect.cpuUs))} % in the kernel`})`,
      target: '',
      meets: undefined,
      nchan: '≈ 82 µs',
      pushpin: '',
    },
    {
      measure: 'node heap per idle connection',
      result: `${formatBytes(per.heap)} (heap ${formatBytes(m.before.heapUsed)} → ${formatBytes(m.idle.heapUsed)})${per.external === undefined ? '' : `; external ${formatBytes(per.external)}`}`,
      target: '',
      meets: undefined,
      nchan: '',
      pushpin: '',
    },
    {
      measure: `unicast publish→receive, ${formatCount(u.sent)} sequential`,
      result: `p50 ${formatUs(u.latency.percentile(50))}, p99 ${formatUs(u.latency.percentile(99))}, max ${formatUs(u.latency.maxUs)}; ${u.received} received, ${unicastLost} lost${describeCounts(u.refused)}${u.nodeLoopDelay ? `; node event-loop delay p99 ${formatUs(u.nodeLoopDelay.p99Us)}, max ${formatUs(u.nodeLoopDelay.maxUs)}` : ''}`,
      target: 'p99 ≤ 2 ms',
      meets: u.latency.percentile(99) <= 2000 && unicastLost === 0,
      nchan: 'p99 ≈ 1 ms',
      pushpin: '',
    },
    {
      measure: `broadcast to all, median of ${b.roundsMs.length}${describeCounts(b.refused)}`,
      result: `${b.roundsMs.length === 0 ? 'n/a' : `${b.medianMs.toFixed(1)} ms (rounds ${Math.min(...b.roundsMs).toFixed(0)}–${Math.max(...b.roundsMs).toFixed(0)} ms)`}; ${allReached ? `every round reached all ${formatCount(b.expected)}` : `reached ${b.reached.join('/')} of ${b.expected}`}; per recipient p50 ${formatUs(b.latency.percentile(50))}`,
      target: `≤ 150 ms at 10,000`,
      meets: b.medianMs <= 150 && allReached,
      nchan: '≈ 150 ms',
      pushpin: '',
    },
    {
      measure: `sustained deliveries, ${s.publishSeconds.toFixed(0)} s`,
      result: `${formatCount(s.deliveriesPerSecond)}/s (${formatCount(s.received)} read of ${formatCount(s.accepted)} accepted; ${s.mode}, ${s.batch} per POST); p50 ${formatUs(s.latency.percentile(50))}, p99 ${formatUs(s.latency.percentile(99))}`,
      target: '',
      meets: undefined,
      nchan: '',
      pushpin: '',
    },
    {
      measure: 'LOST (sent − received, after settle)',
      result: `${formatCount(s.lost)} of ${formatCount(s.sent)}${sumValues(s.refused) > 0 ? `; refused at publish${describeCounts(s.refused)}` : ''}${s.skipped > 0 ? `; ${s.skipped} batches not sent (rate not reached)` : ''}`,
      target: '0',
      meets: s.lost === 0,
      nchan: '',
      pushpin: '',
    },
    {
      measure: 'node CPU per delivery (sustained unicast)',
      result: `${formatUs(cpuPerDelivery)} (${(s.nodeCpuUs / 1e6).toFixed(2)} s node CPU in ${s.deliverySeconds.toFixed(1)} s, ${Math.round((100 * s.nodeCpuUs) / 1e6 / s.deliverySeconds)} % of a core${s.nodeSystemCpuUs === undefined ? '' : `, ${Math.round((100 * s.nodeSystemCpuUs) / Math.max(1, s.nodeCpuUs))} % of it in the kernel`}; clients used ${(s.clientCpuUs / 1e6).toFixed(2)} s)`,
      target: '≤ 15 µs',
      meets: cpuPerDelivery <= 15,
      nchan: '≈ 15 µs',
      pushpin: '≈ 45 µs',
    },
    {
      measure: 'node CPU per delivery (broadcast)',
      result: formatUs(broadcastDeliveries > 0 ? b.nodeCpuUs / broadcastDeliveries : NaN),
      target: '',
      meets: undefined,
      nchan: '',
      pushpin: '',
    },
    {
      measure: 'node RSS after the sustained phase',
      result: `${formatBytes(m.afterSustained.rss)} (heap used ${formatBytes(m.afterSustained.heapUsed)}${m.afterSustained.heapTotal === undefined ? '' : ` of ${formatBytes(m.afterSustained.heapTotal)} committed`}${m.afterSustained.external === undefined ? '' : `, external ${formatBytes(m.afterSustained.external)}`}; ${s.ttl === 0 ? 'ttl 0: history keeps none of them' : 'history keeps the sustained events'})`,
      target: '',
      meets: undefined,
      nchan: '',
      pushpin: '',
    },
    {
      measure: 'streams dropped during the run',
      result: `${streamsLost}${describeCounts(c.lostDuringRun)}`,
      target: '0',
      meets: streamsLost === 0,
      nchan: '',
      pushpin: '',
    },
  ];
}

/** The stream count the targets in the table are set for. */
const TARGET_STREAMS = 10_000;

export function renderTable(result: BenchResult): string {
  const table = markdownTable(
    ['measure', 'result', 'target', 'meets', 'nginx+Nchan', 'Pushpin'],
    rows(result).map((r) => [r.measure, r.result, r.target, r.meets === undefined ? '' : r.meets ? 'yes' : 'NO', r.nchan, r.pushpin]),
  );
  const { machine } = result;
  const lines = [
    `Herald bench, ${result.startedAt}: ${result.target}; ${result.clients} client processes`,
    `${machine.cpus} CPUs, Node ${machine.node}, load average ${machine.loadAvgBefore.map((l) => l.toFixed(2)).join(' ')} before, ${machine.loadAvgAfter.map((l) => l.toFixed(2)).join(' ')} after. Targets are printed, not asserted.`,
    '',
    table,
  ];
  if (result.connections.opened < TARGET_STREAMS) {
    lines.push(
      '',
      `note: the targets are for ${formatCount(TARGET_STREAMS)} streams on one node. With ${formatCount(result.connections.opened)}, fixed costs (the process's own memory, timers, the first requests' warm-up) weigh on every per-stream and per-delivery figure, so a "NO" here says little: run the default size before reading it as a regression.`,
    );
  }
  if (result.perNode) {
    const { idle, end } = result.perNode;
    lines.push('', 'Per node (from /metrics; CPU and counts over the measured phases, after the streams opened):');
    lines.push(
      markdownTable(
        ['node', 'streams', 'RSS idle', 'RSS at the end', 'CPU', 'bus messages', 'deliveries', 'CPU per bus message (all its work)'],
        end.map((e) => {
          const i = idle.find((n) => n.id === e.id);
          const cpuMs = (e.cpuSeconds - (i?.cpuSeconds ?? 0)) * 1000;
          const messages = e.busMessages - (i?.busMessages ?? 0);
          return [
            e.id,
            formatCount(i?.connections ?? e.connections),
            i ? formatBytes(i.rss) : '',
            formatBytes(e.rss),
            `${(e.cpuSeconds - (i?.cpuSeconds ?? 0)).toFixed(2)} s`,
            formatCount(e.busMessages - (i?.busMessages ?? 0)),
            formatCount(e.deliveries - (i?.deliveries ?? 0)),
            messages > 0 ? `${(cpuMs / messages).toFixed(3)} ms` : '',
          ];
        }),
      ),
    );
  }
  if (result.memory.idle.parts) {
    lines.push('', `memory with the streams open: ${Object.entries(result.memory.idle.parts).map(([name, bytes]) => `${name} ${formatBytes(bytes)}`).join(', ')}`);
  }
  if (result.otherCpuSeconds) {
    lines.push('', `other processes' CPU over the run: ${Object.entries(result.otherCpuSeconds).map(([name, sec]) => `${name} ${sec.toFixed(2)} s`).join('; ')}`);
  }
  if (result.cost) lines.push(renderCost(result.cost));
  for (const note of result.notes ?? []) lines.push(`note: ${note}`);
  const counters = Object.entries(result.nodeCounters);
  if (counters.length > 0) lines.push('', `node counters that moved: ${counters.map(([k, n]) => `${k} +${n}`).join(', ')}`);
  if (result.profile) {
    const p = result.profile;
    lines.push('', `CPU profile of the node during the ${p.phase} phase (${p.path}; its figures include the profiler's cost): ${p.busyMs.toFixed(0)} ms busy, ${p.idleMs.toFixed(0)} ms idle. Top self time:`);
    lines.push(
      markdownTable(
        ['self ms', '% busy', 'function', 'module'],
        p.top.map((h) => [h.selfMs.toFixed(1), h.percent.toFixed(1), h.functionName, h.where]),
      ),
      '',
      'Self time by module:',
      markdownTable(
        ['self ms', '% busy', 'module'],
        p.modules.map((m) => [m.selfMs.toFixed(1), m.percent.toFixed(1), m.where]),
      ),
    );
  }
  return lines.join('\n');
}

function latency(h: { percentile(p: number): number; maxUs: number; count: number }): Record<string, number> {
  return { count: h.count, p50Us: h.percentile(50), p90Us: h.percentile(90), p99Us: h.percentile(99), maxUs: h.maxUs };
}

function sustainedJson(s: SustainedResult): unknown {
  return { ...s, latency: latency(s.latency), nodeCpuPerDeliveryUs: s.received > 0 ? s.nodeCpuUs / s.received : null };
}

/** JSON-friendly form: histograms become their percentiles. */
export function toJson(result: BenchResult): unknown {
  const per = perConnection(result);
  return {
    ...result,
    profile: result.profile ?? null,
    perConnection: { rssBytes: per.rss, heapBytes: per.heap, externalBytes: per.external ?? null },
    unicast: { ...result.unicast, latency: latency(result.unicast.latency) },
    broadcast: { ...result.broadcast, latency: latency(result.broadcast.latency) },
    cost: result.cost ? { ...result.cost, singlePrice: priceWindow(result.cost.single), batchedPrice: priceWindow(result.cost.batched) } : null,
    connect: { ...result.connect, cpuPerStreamUs: result.connections.opened > 0 ? result.connect.cpuUs / result.connections.opened : null },
    sustained: sustainedJson(result.sustained),
    sustainedSingle: result.sustainedSingle ? sustainedJson(result.sustainedSingle) : null,
  };
}
