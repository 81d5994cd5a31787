/**
 * `npm run bench`: how many streams a node holds and what they cost, how fast
 * a publish reaches one user and everyone, and how many deliveries per second
 * it sustains without loss. Prints figures beside their targets; never asserts
 * a timing, and is not part of `npm test`.
 *
 * Processes: this one (CLI, publisher, table), the node under test (unless
 * `--url`), and `--clients` load clients holding the streams. All traffic
 * stays on 127.0.0.0/8, and every process started here is stopped by its pid.
 *
 * `--compare nchan` runs the local shape and then nginx + Nchan through the
 * same phases, each with fresh load clients, and prints them side by side.
 */
import { randomBytes } from 'node:crypto';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildBundles, type Bundles } from './build';
import { ClientFleet, type OpenSummary } from './client-fleet';
import { comparisonJson, renderComparison } from './compare-report';
import { costPhases, type CostResult } from './cost';
import { renderCost } from './cost-report';
import { UsageError, USAGE, parseOptions, type BenchOptions } from './options';
import { broadcastFanOut, sustainedDeliveries, unicastLatency, type BenchContext } from './phases';
import { installExitGuards, stopAll } from './processes';
import { summarizeProfile, type ProfileSummary } from './profile';
import { getText } from './publisher';
import { attachToUrl } from './remote-target';
import { renderTable, toJson, type BenchResult } from './report';
import { SHAPES, type NodeUnderTest, type ShapeOptions } from './shape';

const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The table on stdout; with `--json`, the JSON there and the table on stderr. */
function print(options: BenchOptions, table: string, json: () => unknown): void {
  if (!options.json) {
    console.log(table);
    return;
  }
  console.error(table);
  console.log(JSON.stringify(json(), null, 2));
}

/** Counters worth showing when they move: anything dropped, closed or refused. */
const WATCHED_COUNTERS = /^herald_(drops_total|connections_closed_total|refusals_total)/;

function countersMoved(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const moved: Record<string, number> = {};
  for (const [name, value] of after) {
    const delta = value - (before.get(name) ?? 0);
    if (WATCHED_COUNTERS.test(name) && delta !== 0) moved[name] = delta;
  }
  return moved;
}

async function openStreams(options: BenchOptions, node: NodeUnderTest, fleet: ClientFleet, secret: string): Promise<{ epochNs: bigint; opened: OpenSummary }> {
  const epochNs = process.hrtime.bigint();
  log(`opening ${options.connections} streams from ${fleet.size} client processes…`);
  const opened = await fleet.open({
    url: node.url,
    ...(node.urls ? { urls: node.urls } : {}),
    ...(node.stream ? { stream: node.stream } : {}),
    secret,
    connections: options.connections,
    epochNs,
    concurrency: 64,
  });
  log(`${opened.opened.length} open in ${(opened.wallMs / 1000).toFixed(1)} s${Object.keys(opened.failures).length > 0 ? `, failures ${JSON.stringify(opened.failures)}` : ''}`);
  if (opened.opened.length === 0) throw new Error(`no stream opened: ${JSON.stringify(opened.failures)}`);
  return { epochNs, opened };
}

/** The cost phase, when this run has one (cluster shape, `--cost-count` above 0). */
async function measureCost(options: BenchOptions, context: BenchContext): Promise<CostResult | undefined> {
  if (options.costCount === 0 || !context.node.awsUsage) return undefined;
  return costPhases(context, context.node, { count: options.costCount, rate: options.costRate, idleS: options.costIdleS });
}

/** `--cost-only`: open the streams, then only the cost phase. */
async function measureCostOnly(options: BenchOptions, node: NodeUnderTest, fleet: ClientFleet, secret: string): Promise<string> {
  const { epochNs, opened } = await openStreams(options, node, fleet, secret);
  // As in the full run: the nodes finish their claims before anything is measured.
  await sleep(2000);
  const cost = await measureCost(options, { node, fleet, users: opened.opened, epochNs, log });
  if (!cost) throw new Error('this shape has no request meters: --cost-only needs --shape cluster');
  const lost = (await fleet.report([])).lost;
  return [
    `Herald bench (cost phase only), ${new Date().toISOString()}: ${node.description}; ${opened.opened.length} streams open; ${cpus().length} CPUs, Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}. Targets are printed, not asserted.`,
    renderCost(cost),
    ...(Object.keys(lost).length > 0 ? [`streams dropped during the run: ${JSON.stringify(lost)}`] : []),
    ...(node.notes ?? []).map((note) => `note: ${note}`),
  ].join('\n');
}

/**
 * All the phases against one server. `singleToo`: after the sustained phase,
 * run it again with one notification per POST (`--compare`: as Nchan publishes).
 */
async function measure(options: BenchOptions, node: NodeUnderTest, fleet: ClientFleet, secret: string, singleToo = false): Promise<BenchResult> {
  const startedAt = new Date().toISOString();
  const loadAvgBefore = loadavg();
  // A few requests first, so the baseline includes a warmed-up HTTP path rather than charging it to the streams.
  for (let i = 0; i < 20; i++) await getText(`${node.url}/healthz`);
  const before = await node.memory();
  const countersBefore = await node.counters();

  const profiler = options.profile ? node.profiler : undefined;
  if (options.profile && !profiler) log('this shape cannot profile the node; --profile ignored');
  const profilePath = join(tmpdir(), `herald-bench-${Date.now()}.cpuprofile`);
  // Stopped only after the CPU is read: writing the profile costs the node CPU, which must not count as the phase's.
  const stopProfile = async (): Promise<ProfileSummary | undefined> => {
    if (!profiler) return undefined;
    await profiler.stop(profilePath);
    return summarizeProfile(profilePath, profiler.bundlePath, options.profile ?? 'sustained');
  };
  let profile: ProfileSummary | undefined;

  if (options.profile === 'connect') await profiler?.start();
  const cpuBeforeOpen = await node.cpu();
  const { epochNs, opened } = await openStreams(options, node, fleet, secret);
  const cpuAfterOpen = await node.cpu();
  if (options.profile === 'connect') profile = await stopProfile();
  // Let the node finish its bookkeeping (claims, first pings) before reading its idle memory.
  await sleep(2000);
  const idle = await node.memory();
  const perNodeIdle = await node.perNode?.();

  const context: BenchContext = { node, fleet, users: opened.opened, epochNs, log };
  log('unicast warm-up (200)…');
  await unicastLatency(context, 200, 'w');
  log(`unicast latency (${options.samples} sequential)…`);
  const unicast = await unicastLatency(context, options.samples);

  const expected = (await fleet.report([])).open;
  log(`broadcast to ${expected} (${options.rounds} rounds)…`);
  const broadcast = await broadcastFanOut(context, options.rounds, expected);

  const batch = Math.min(options.batch, node.maxBatch ?? options.batch);
  log(`sustained deliveries for ${options.durationS} s, ${batch} per POST…`);
  if (options.profile === 'sustained') await profiler?.start();
  const sustained = await sustainedDeliveries(context, {
    durationS: options.durationS,
    publishers: options.publishers,
    batch,
    rate: options.rate,
    ttl: options.ttl,
  });
  // Stopped only now: writing the profile costs the node CPU, which must not count as delivery work.
  if (options.profile === 'sustained') profile = await stopProfile();
  let sustainedSingle: BenchResult['sustainedSingle'];
  if (singleToo && batch > 1) {
    log(`sustained deliveries for ${options.durationS} s, 1 per POST…`);
    sustainedSingle = await sustainedDeliveries(context, { durationS: options.durationS, publishers: options.publishers, batch: 1, rate: options.rate, ttl: options.ttl }, 's1');
  }

  const afterSustained = await node.memory();
  const final = await fleet.report([]);
  const countersAfter = await node.counters();
  const perNodeEnd = await node.perNode?.();
  const otherCpu = await node.otherCpuSeconds?.();
  const cost = await measureCost(options, context);
  const notes = [
    ...(options.shapeDefaults.length > 0 ? [`sizes: this shape's defaults ${options.shapeDefaults.join(', ')} (modest: every process shares the machine's ${cpus().length} cores); pass the flags to change them`] : []),
    ...(node.notes ?? []),
  ];
  return {
    startedAt,
    machine: { cpus: cpus().length, node: process.version, loadAvgBefore, loadAvgAfter: loadavg() },
    target: node.description,
    clients: fleet.size,
    connections: {
      requested: options.connections,
      opened: opened.opened.length,
      failures: opened.failures,
      openSeconds: opened.wallMs / 1000,
      lostDuringRun: final.lost,
      stillOpenAtEnd: final.open,
    },
    memory: { before, idle, afterSustained },
    connect: {
      cpuUs: cpuAfterOpen.totalUs - cpuBeforeOpen.totalUs,
      systemUs: cpuAfterOpen.systemUs === undefined || cpuBeforeOpen.systemUs === undefined ? undefined : cpuAfterOpen.systemUs - cpuBeforeOpen.systemUs,
    },
    unicast,
    broadcast,
    sustained,
    ...(sustainedSingle ? { sustainedSingle } : {}),
    nodeCounters: countersMoved(countersBefore, countersAfter),
    profile,
    notes,
    ...(perNodeIdle && perNodeEnd ? { perNode: { idle: perNodeIdle, end: perNodeEnd } } : {}),
    ...(otherCpu ? { otherCpuSeconds: otherCpu } : {}),
    ...(cost ? { cost } : {}),
  };
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    const parsed = parseOptions(process.argv.slice(2));
    if (parsed === 'help') {
      console.log(USAGE);
      return 0;
    }
    options = parsed;
  } catch (error) {
    if (!(error instanceof UsageError) && !(error instanceof TypeError)) throw error;
    console.error(`${error.message}\n\n${USAGE}`);
    return 2;
  }

  installExitGuards(log);
  // Bounded in time whatever happens: open, phases and settles each have their own deadlines; this is the backstop.
  const costMs = options.costCount === 0 ? 0 : options.costIdleS * 1000 + ((2 * options.costCount) / options.costRate) * 3000 + 2 * 70_000;
  const oneRunMs = 180_000 + options.connections * 20 + options.samples * 20 + options.durationS * 3000 + costMs;
  // --compare: two servers, and Herald's sustained phase twice.
  const budgetMs = options.compare ? Math.min(60 * 60_000, 2 * oneRunMs + options.durationS * 3000) : Math.min(30 * 60_000, oneRunMs);
  const watchdog = setTimeout(() => {
    log(`still running after ${Math.round(budgetMs / 1000)} s: stopping everything`);
    void stopAll().finally(() => process.exit(3));
  }, budgetMs);
  watchdog.unref();

  let bundles: Bundles | undefined;
  let node: NodeUnderTest | undefined;
  let fleet: ClientFleet | undefined;
  try {
    bundles = await buildBundles();
    // Also on Ctrl-C, which exits without reaching `finally`.
    process.once('exit', () => bundles?.remove());
    const secret = options.target?.secret ?? randomBytes(32).toString('base64url');
    const publishToken = options.target?.publishToken ?? randomBytes(24).toString('base64url');
    const shapeOptions: ShapeOptions = {
      connections: options.connections,
      secret,
      publishToken,
      publishers: options.publishers,
      buildDir: bundles.dir,
      nodes: options.nodes,
      publishVia: options.publishVia,
      nodeFlags: options.nodeFlags,
    };
    if (options.compare) {
      // Before Herald's run, so a missing package or too many streams for nginx fails at once.
      (await import('./nchan-target')).nchanPreflight(options.connections, options.publishers);
      const built = bundles;
      /** One server through every phase with its own load clients; both stopped before the next one starts. */
      const runOne = async (shape: string, singleToo: boolean): Promise<BenchResult> => {
        log(`starting ${shape}…`);
        const target = await SHAPES[shape]!(shapeOptions);
        let clients: ClientFleet | undefined;
        try {
          log(`${target.description} at ${target.url}`);
          clients = await ClientFleet.start(options.clients, built.dir);
          return await measure(options, target, clients, secret, singleToo);
        } finally {
          log(`stopping the clients and ${shape}…`);
          await clients?.stop().catch(() => undefined);
          await target.stop().catch(() => undefined);
        }
      };
      const herald = await runOne('local', true);
      // Let the closed sockets and the freed memory settle before the second server starts.
      await sleep(3000);
      const other = await runOne(options.compare, false);
      const comparison = { herald, other, otherName: 'nginx+Nchan', order: 'Herald (local shape) first, then nginx+Nchan' };
      print(options, renderComparison(comparison), () => comparisonJson(comparison));
      return 0;
    }
    if (options.target) {
      node = attachToUrl(options.target.url, options.target.publishToken, options.publishers);
    } else {
      log(`starting the node (shape ${options.shape})…`);
      node = await SHAPES[options.shape]!(shapeOptions);
    }
    log(`${node.description} at ${node.url}`);
    fleet = await ClientFleet.start(options.clients, bundles.dir);
    if (options.costOnly) {
      console.log(await measureCostOnly(options, node, fleet, secret));
      return 0;
    }
    const result = await measure(options, node, fleet, secret);
    print(options, renderTable(result), () => toJson(result));
    return 0;
  } catch (error) {
    log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 1;
  } finally {
    log('stopping clients and node…');
    await fleet?.stop().catch(() => undefined);
    await node?.stop().catch(() => undefined);
    await stopAll();
    bundles?.remove();
    clearTimeout(watchdog);
  }
}

process.exitCode = await main();
