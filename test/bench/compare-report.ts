/**
 * `--compare nchan`: the local shape's figures and nginx + Nchan's, measured
 * in one run with the same sizes, side by side with their ratio. On a shared
 * machine the absolute figures move from run to run; the ratios within a run
 * are what hold.
 */
import type { SustainedResult } from './phases';
import { perConnection, toJson, type BenchResult } from './report';
import type { MemorySample } from './shape';
import { formatBytes, formatCount, formatUs, markdownTable } from './stats';

export interface Comparison {
  readonly herald: BenchResult;
  readonly other: BenchResult;
  /** Column name of the other server. */
  readonly otherName: string;
  /** In which order they ran, for the output. */
  readonly order: string;
}

interface CompareRow {
  readonly measure: string;
  readonly herald: string;
  readonly other: string;
  /** Herald's figure divided by the other's, where both are numbers. */
  readonly ratio: number | undefined;
  /** Raw numbers, for the JSON. */
  readonly heraldValue?: number;
  readonly otherValue?: number;
  readonly unit?: string;
}

function sum(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

function describe(counts: Record<string, number>): string {
  const entries = Object.entries(counts);
  return entries.length === 0 ? '' : ` (${entries.map(([k, n]) => `${k}: ${n}`).join(', ')})`;
}

function ratioOf(a: number, b: number): number | undefined {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : undefined;
}

function formatRatio(r: number | undefined): string {
  if (r === undefined) return '';
  return `${r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(2) : r.toFixed(3)}×`;
}

/** A row whose cells are one number each, formatted, with the ratio of the two. */
function numeric(measure: string, herald: number, other: number, format: (n: number) => string, unit: string, heraldExtra = '', otherExtra = ''): CompareRow {
  return { measure, herald: `${format(herald)}${heraldExtra}`, other: `${format(other)}${otherExtra}`, ratio: ratioOf(herald, other), heraldValue: herald, otherValue: other, unit };
}

const cpuPerStream = (r: BenchResult): number => (r.connections.opened > 0 ? r.connect.cpuUs / r.connections.opened : NaN);
const cpuPerDelivery = (s: SustainedResult): number => (s.received > 0 ? s.nodeCpuUs / s.received : NaN);
const broadcastDeliveries = (r: BenchResult): number => r.broadcast.reached.reduce((a, n) => a + n, 0);
const broadcastPerStreamUs = (r: BenchResult): number => (r.broadcast.expected > 0 ? (r.broadcast.medianMs * 1000) / r.broadcast.expected : NaN);
const lostCell = (s: SustainedResult): string => `${formatCount(s.lost)} of ${formatCount(s.sent)}${sum(s.refused) > 0 ? `; refused${describe(s.refused)}` : ''}`;

/** Who was busy over the sustained phase (including its settle): the server, and the bench process that publishes. */
function busy(s: SustainedResult): string {
  const share = (us: number): number => Math.round((100 * us) / 1e6 / s.deliverySeconds);
  return `server ${share(s.nodeCpuUs)} % of a core, publisher ${share(s.publisherCpuUs)} %`;
}

function sustainedLabel(s: SustainedResult): string {
  return `${s.batch} per POST`;
}

function rows(c: Comparison): CompareRow[] {
  const { herald: h, other: o } = c;
  const hPer = perConnection(h);
  const oPer = perConnection(o);
  const held = (r: BenchResult): string =>
    `${formatCount(r.connections.opened)} / ${formatCount(r.connections.requested)}, ${sum(r.connections.failures)} errors${describe(r.connections.failures)}, in ${r.connections.openSeconds.toFixed(1)} s`;
  // Herald's sustained phase with one notification per POST (as Nchan publishes), when it ran apart from the batched one.
  const hSingle = h.sustainedSingle ?? (h.sustained.batch === 1 ? h.sustained : undefined);
  const hBatched = h.sustained.batch > 1 ? h.sustained : undefined;
  const os = o.sustained;
  const out: CompareRow[] = [
    { measure: 'streams held', herald: held(h), other: held(o), ratio: undefined },
    numeric('server RSS per idle stream', hPer.rss, oPer.rss, formatBytes, 'bytes', h.memory.idle.afterGc ? ' (after GC)' : ''),
    numeric(`server RSS with the streams open`, h.memory.idle.rss, o.memory.idle.rss, formatBytes, 'bytes', ` (from ${formatBytes(h.memory.before.rss)})`, ` (from ${formatBytes(o.memory.before.rss)})`),
    numeric('server CPU per accepted stream (connect phase)', cpuPerStream(h), cpuPerStream(o), formatUs, 'µs'),
    numeric(`unicast publish→receive p50, ${formatCount(h.unicast.sent)} sequential`, h.unicast.latency.percentile(50), o.unicast.latency.percentile(50), formatUs, 'µs'),
    numeric(
      'unicast publish→receive p99',
      h.unicast.latency.percentile(99),
      o.unicast.latency.percentile(99),
      formatUs,
      'µs',
      `; ${formatCount(h.unicast.sent - h.unicast.received)} lost`,
      `; ${formatCount(o.unicast.sent - o.unicast.received)} lost`,
    ),
    numeric(
      `broadcast to all, median of ${h.broadcast.roundsMs.length} / ${o.broadcast.roundsMs.length}`,
      h.broadcast.medianMs * 1000,
      o.broadcast.medianMs * 1000,
      formatUs,
      'µs',
      `; reached ${h.broadcast.reached.every((n) => n >= h.broadcast.expected) ? 'all' : h.broadcast.reached.join('/')}`,
      `; reached ${o.broadcast.reached.every((n) => n >= o.broadcast.expected) ? 'all' : o.broadcast.reached.join('/')}`,
    ),
    numeric('broadcast time per stream (median ÷ streams)', broadcastPerStreamUs(h), broadcastPerStreamUs(o), (n) => `${n.toFixed(2)} µs`, 'µs'),
    numeric(
      'server CPU per delivery (broadcast)',
      broadcastDeliveries(h) > 0 ? h.broadcast.nodeCpuUs / broadcastDeliveries(h) : NaN,
      broadcastDeliveries(o) > 0 ? o.broadcast.nodeCpuUs / broadcastDeliveries(o) : NaN,
      formatUs,
      'µs',
    ),
  ];
  if (hSingle) {
    out.push(
      numeric(
        `sustained unicast deliveries/s, ${sustainedLabel(hSingle)} / ${sustainedLabel(os)}, ${os.mode}`,
        hSingle.deliveriesPerSecond,
        os.deliveriesPerSecond,
        (n) => `${formatCount(n)}/s`,
        'per second',
        ` (p99 ${formatUs(hSingle.latency.percentile(99))}; ${busy(hSingle)})`,
        ` (p99 ${formatUs(os.latency.percentile(99))}; ${busy(os)})`,
      ),
      { measure: `LOST (sent − received), ${sustainedLabel(hSingle)} / ${sustainedLabel(os)}`, herald: lostCell(hSingle), other: lostCell(os), ratio: undefined, heraldValue: hSingle.lost, otherValue: os.lost, unit: 'deliveries' },
      numeric(`server CPU per delivery (sustained, ${sustainedLabel(hSingle)} / ${sustainedLabel(os)})`, cpuPerDelivery(hSingle), cpuPerDelivery(os), formatUs, 'µs'),
    );
  }
  if (hBatched) {
    out.push(
      numeric(
        `sustained unicast deliveries/s, Herald ${sustainedLabel(hBatched)} / ${sustainedLabel(os)}`,
        hBatched.deliveriesPerSecond,
        os.deliveriesPerSecond,
        (n) => `${formatCount(n)}/s`,
        'per second',
        ` (p99 ${formatUs(hBatched.latency.percentile(99))}; ${busy(hBatched)})`,
      ),
      { measure: `LOST (sent − received), Herald ${sustainedLabel(hBatched)}`, herald: lostCell(hBatched), other: '', ratio: undefined, heraldValue: hBatched.lost, unit: 'deliveries' },
      numeric(`server CPU per delivery (sustained, Herald ${sustainedLabel(hBatched)} / ${sustainedLabel(os)})`, cpuPerDelivery(hBatched), cpuPerDelivery(os), formatUs, 'µs'),
    );
  }
  out.push(
    numeric(
      'server RSS after the sustained phase(s), messages kept for replay',
      h.memory.afterSustained.rss,
      o.memory.afterSustained.rss,
      formatBytes,
      'bytes',
      h.memory.afterSustained.afterGc ? ' (after GC)' : '',
    ),
  );
  out.push({
    measure: 'streams dropped during the run',
    herald: `${sum(h.connections.lostDuringRun)}${describe(h.connections.lostDuringRun)}`,
    other: `${sum(o.connections.lostDuringRun)}${describe(o.connections.lostDuringRun)}`,
    ratio: undefined,
  });
  return out;
}

function memoryParts(m: MemorySample): string {
  return Object.entries(m.parts ?? {})
    .map(([name, bytes]) => `${name} ${formatBytes(bytes)}`)
    .join(', ');
}

export function renderComparison(c: Comparison): string {
  const { herald: h, other: o } = c;
  const load = (r: BenchResult): string => `${r.machine.loadAvgBefore.map((l) => l.toFixed(2)).join(' ')} → ${r.machine.loadAvgAfter.map((l) => l.toFixed(2)).join(' ')}`;
  const lines = [
    `Herald vs ${c.otherName}, ${h.startedAt}: ${formatCount(h.connections.requested)} streams from ${h.clients} client processes each; ${h.machine.cpus} CPUs, Node ${h.machine.node}.`,
    `Ran ${c.order}, each with fresh client processes. Load average (1/5/15 min) Herald ${load(h)}; ${c.otherName} ${load(o)}.`,
    `Herald: ${h.target}`,
    `${c.otherName}: ${o.target}`,
    '',
    markdownTable(
      ['measure', 'Herald', c.otherName, `Herald ÷ ${c.otherName}`],
      rows(c).map((r) => [r.measure, r.herald, r.other, formatRatio(r.ratio)]),
    ),
    '',
    h.sustained.batch > 1
      ? `note: ${c.otherName} takes one message per POST, so Herald's sustained phase ran twice: ${h.sustained.batch} per POST (how it is meant to be published to), then one per POST (like for like); all ${o.sustained.mode}, ${h.sustained.publishSeconds.toFixed(0)} s each.`
      : `note: ${c.otherName} takes one message per POST; Herald's sustained phase ran with --batch 1 only (like for like); both ${o.sustained.mode}.`,
    'note: server CPU per accepted stream = the server\'s CPU during the connect phase ÷ streams opened (Herald\'s includes verifying each stream\'s JWT); broadcast time per stream = the median broadcast ÷ streams.',
    `note: ${c.otherName}'s memory at idle: ${memoryParts(o.memory.idle)}; nginx allocates its connection table (worker_connections) at start, so that part is in its baseline, not in the per-stream figure.`,
    ...(o.notes ?? []).map((n) => `note: ${n}`),
  ];
  const moved = Object.entries(h.nodeCounters);
  if (moved.length > 0) lines.push(`Herald counters that moved: ${moved.map(([k, n]) => `${k} +${n}`).join(', ')}`);
  return lines.join('\n');
}

export function comparisonJson(c: Comparison): unknown {
  return {
    order: c.order,
    other: c.otherName,
    rows: rows(c).map((r) => ({ measure: r.measure, herald: r.heraldValue ?? r.herald, [c.otherName]: r.otherValue ?? r.other, ratio: r.ratio ?? null, unit: r.unit ?? null })),
    herald: toJson(c.herald),
    [c.otherName]: toJson(c.other),
  };
}
