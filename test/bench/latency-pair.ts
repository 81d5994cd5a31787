/**
 * Unicast latency of a Herald node and of nginx + Nchan in the same minutes.
 * `--compare nchan` measures one server after the other, and on a shared
 * machine one busy moment in either run moves a p99 of 2,000 samples by
 * several times (measured: Herald ÷ Nchan from 0.34× to 5.6× over four
 * runs). Here both servers hold N streams at once, each with its own client
 * processes, and the sequential unicasts go in blocks that alternate between
 * them (which one starts a round alternates too), so whatever the machine
 * does falls on both alike.
 *
 *   npx tsx test/bench/latency-pair.ts [--connections N] [--samples N] [--block N] [--clients N] [--node-flags="F…"]
 *
 * Herald is the local shape (bundled, as `npm run bench` starts it); Nchan is
 * configured as for `--compare nchan`. Every process is stopped by its pid.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { buildBundles, type Bundles } from './build';
import { ClientFleet } from './client-fleet';
import { startLocalShape } from './local-shape';
import { nchanPreflight, startNchanTarget } from './nchan-target';
import { intFlag, nodeFlags } from './options';
import { unicastLatency, type BenchContext } from './phases';
import { installExitGuards, stopAll } from './processes';
import type { NodeUnderTest, ShapeOptions } from './shape';
import { LatencyHistogram, formatUs, markdownTable } from './stats';

const log = (line: string): void => void process.stderr.write(`[latency-pair] ${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));


const { values } = parseArgs({
  options: { connections: { type: 'string' }, samples: { type: 'string' }, block: { type: 'string' }, clients: { type: 'string' }, 'node-flags': { type: 'string' } },
});
// Each server's streams are held by its own clients; nginx's worker and the node each hold all of one side.
const connections = intFlag(values, 'connections', 10_000, 1, 18_000);
const samples = intFlag(values, 'samples', 2_000, 100, 100_000);
const block = intFlag(values, 'block', 100, 10, 10_000);
const clients = intFlag(values, 'clients', 2, 1, 8);
/** Extra flags for Herald's node, as `npm run bench -- --node-flags`. */
const flags = nodeFlags(values['node-flags']);

interface Side {
  readonly name: string;
  readonly target: NodeUnderTest;
  readonly fleet: ClientFleet;
  context?: BenchContext;
  readonly latency: LatencyHistogram;
  sent: number;
  received: number;
  /** The p99 of each block, to show how much of the tail is the moment rather than the server. */
  readonly blockP99s: number[];
}

async function open(side: Side, secret: string): Promise<void> {
  const epochNs = process.hrtime.bigint();
  log(`opening ${connections} streams on ${side.name}…`);
  const opened = await side.fleet.open({ url: side.target.url, ...(side.target.stream ? { stream: side.target.stream } : {}), secret, connections, epochNs, concurrency: 64 });
  if (opened.opened.length !== connections) throw new Error(`${side.name}: ${opened.opened.length} of ${connections} streams opened: ${JSON.stringify(opened.failures)}`);
  side.context = { node: side.target, fleet: side.fleet, users: opened.opened, epochNs, log };
}

function row(side: Side): string[] {
  const { latency } = side;
  const sortedBlocks = [...side.blockP99s].sort((a, b) => a - b);
  return [
    side.name,
    formatUs(latency.percentile(50)),
    formatUs(latency.percentile(90)),
    formatUs(latency.percentile(99)),
    formatUs(latency.percentile(99.9)),
    formatUs(latency.maxUs),
    `${formatUs(sortedBlocks[0] ?? NaN)} – ${formatUs(sortedBlocks[sortedBlocks.length - 1] ?? NaN)}`,
    `${side.sent - side.received} of ${side.sent}`,
  ];
}

async function main(): Promise<number> {
  installExitGuards(log);
  // Bounded whatever happens: the opens, the blocks and their settles each have deadlines; this is the backstop.
  const watchdog = setTimeout(() => {
    log('still running after 20 minutes: stopping everything');
    void stopAll().finally(() => process.exit(3));
  }, 20 * 60_000);
  watchdog.unref();
  let bundles: Bundles | undefined;
  const sides: Side[] = [];
  try {
    nchanPreflight(connections, 1);
    bundles = await buildBundles();
    process.once('exit', () => bundles?.remove());
    const secret = randomBytes(32).toString('base64url');
    const shapeOptions: ShapeOptions = { connections, secret, publishToken: randomBytes(24).toString('base64url'), publishers: 1, buildDir: bundles.dir, nodes: 1, publishVia: 'http', nodeFlags: flags };
    for (const [name, start] of [
      ['Herald', startLocalShape],
      ['nginx+Nchan', startNchanTarget],
    ] as const) {
      const target = await start(shapeOptions);
      sides.push({ name, target, fleet: await ClientFleet.start(clients, bundles.dir), latency: new LatencyHistogram(), sent: 0, received: 0, blockP99s: [] });
      log(`${target.description} at ${target.url}`);
    }
    for (const side of sides) await open(side, secret);
    // As the bench does: claims and first pings settle before anything is measured.
    await sleep(2000);
    for (const side of sides) await unicastLatency(side.context!, 200, `w-${side.name}`);
    const blocks = Math.ceil(samples / block);
    log(`${blocks} blocks of ${block} sequential unicasts on each, alternating…`);
    const loadBefore = loadavg();
    for (let k = 0; k < blocks; k++) {
      const order = k % 2 === 0 ? sides : [...sides].reverse();
      for (const side of order) {
        const result = await unicastLatency(side.context!, block, `${side.name}-${k}`);
        side.latency.merge(result.latency);
        side.sent += result.sent;
        side.received += result.received;
        side.blockP99s.push(result.latency.percentile(99));
      }
    }
    const loadAfter = loadavg();
    const [herald, nchan] = sides as [Side, Side];
    const ratio = (p: number): string => (herald.latency.percentile(p) / nchan.latency.percentile(p)).toFixed(2);
    console.log(
      [
        `Unicast publish→receive, ${connections.toLocaleString('en-US')} streams on each server at once, ${blocks} alternating blocks of ${block} sequential unicasts each, ${new Date().toISOString()}; load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')} → ${loadAfter.map((l) => l.toFixed(2)).join(' ')}.`,
        '',
        markdownTable(['server', 'p50', 'p90', 'p99', 'p99.9', 'max', 'p99 of a block, lowest – highest', 'lost'], sides.map(row)),
        '',
        `Herald ÷ Nchan: p50 ${ratio(50)}×, p90 ${ratio(90)}×, p99 ${ratio(99)}×, p99.9 ${ratio(99.9)}×.`,
      ].join('\n'),
    );
    return 0;
  } catch (error) {
    log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 1;
  } finally {
    for (const side of sides) {
      await side.fleet.stop().catch(() => undefined);
      await side.target.stop().catch(() => undefined);
    }
    await stopAll();
    bundles?.remove();
    clearTimeout(watchdog);
  }
}

process.exitCode = await main();
