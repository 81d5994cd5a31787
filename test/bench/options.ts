/**
 * The bench's flags. Everything it does is bounded: counts are capped, and
 * every target must be on 127.0.0.0/8.
 */
import { parseArgs } from 'node:util';
import { MAX_STREAMS_PER_CLIENT } from './client-fleet';
import { SHAPES } from './shape';

/** The local node (and nginx's one worker) holds every stream in one process, which may open at most 20,000 files. */
const LOCAL_MAX_CONNECTIONS = 19_000;

/** Servers `--compare` runs beside the local shape, in the same run. */
export const COMPARE_TARGETS = ['nchan'] as const;

function profilePhase(raw: string | undefined): ProfilePhase | undefined {
  if (raw === undefined || raw === 'connect' || raw === 'sustained') return raw;
  throw new UsageError(`--profile takes connect or sustained, got "${raw}"`);
}

/** `--node-flags`: whitespace-separated, each a `--flag` (a bare word would be taken for the script to run). */
export function nodeFlags(raw: string | undefined): string[] {
  const flags = (raw ?? '').split(/\s+/).filter(Boolean);
  const bad = flags.find((flag) => !/^--[a-z0-9][a-z0-9_-]*(=\S+)?$/i.test(flag));
  if (bad !== undefined) throw new UsageError(`--node-flags takes flags such as --max-semi-space-size=32, got "${bad}"`);
  return flags;
}

/** The phases `--profile` can record: opening the streams, or the sustained deliveries. */
export type ProfilePhase = 'connect' | 'sustained';

export interface BenchOptions {
  readonly connections: number;
  readonly clients: number;
  readonly shape: string;
  /** An existing node instead of starting one; needs the publisher token and the JWT secret. */
  readonly target: { readonly url: string; readonly publishToken: string; readonly secret: string } | undefined;
  readonly durationS: number;
  readonly json: boolean;
  readonly samples: number;
  readonly rounds: number;
  readonly publishers: number;
  readonly batch: number;
  readonly rate: number | undefined;
  /** `ttl` of the sustained notifications; undefined = the node's default (kept for replay). */
  readonly ttl: number | undefined;
  /** Write a CPU profile of the node during this phase (local shape). */
  readonly profile: ProfilePhase | undefined;
  /** Extra `node` flags for the local shape's node (V8's too), e.g. `--max-semi-space-size=32`. */
  readonly nodeFlags: readonly string[];
  /** Nodes of the cluster or redis shape. */
  readonly nodes: number;
  /** How the cluster shape publishes. */
  readonly publishVia: 'lambda' | 'http';
  /** Cluster shape: notifications in each window of the cost phase; 0 leaves the phase out. */
  readonly costCount: number;
  /** Cluster shape: notifications per second in the cost phase. */
  readonly costRate: number;
  /** Cluster shape: seconds of the cost phase's idle window (the nodes' fixed cost); 0 leaves it out. */
  readonly costIdleS: number;
  /** Cluster shape: open the streams, then run the cost phase alone. */
  readonly costOnly: boolean;
  /** Flags left at this shape's own defaults, named for the output (e.g. `--connections 3000`). */
  readonly shapeDefaults: readonly string[];
  /** Also run the same phases against this server, after the local shape, and print both side by side. */
  readonly compare: (typeof COMPARE_TARGETS)[number] | undefined;
}

/**
 * Smaller defaults for the multi-node shapes: the nodes, their backing
 * services (the emulators, or Redis) and the load clients share the
 * machine's cores.
 */
export const CLUSTER_DEFAULTS = { connections: 3_000, samples: 500, nodes: 3 } as const;

/** The cost phase (cluster shape): 5 s at 1,000 notifications/s, after a 20 s idle window. */
export const COST_DEFAULTS = { count: 5_000, rate: 1_000, idleS: 20 } as const;

export const USAGE = `npm run bench -- [flags]

  --connections N     streams to open, one user each (default 10000)
  --clients N         client processes, each from its own 127.0.0.x (default 4)
  --shape S           what to start: local (one node, memory adapters; default), cluster
                      (the AWS shape on this machine: --nodes nodes in aws mode on the emulators,
                      publishing through the Lambda handler → SNS → SQS) or redis (--nodes nodes in
                      redis mode on one redis-server, publishing with POST /publish on each in turn);
                      both default to --connections ${CLUSTER_DEFAULTS.connections}, --samples ${CLUSTER_DEFAULTS.samples};
                      or nchan (nginx + the Nchan module alone, one message per POST; see --compare)
  --compare nchan     run the same phases against the local shape and then nginx + Nchan (Debian's nginx and
                      libnginx-mod-nchan, installed with apt when missing and running as root), and print them
                      side by side with ratios. Herald's sustained phase runs twice: --batch per POST, then 1 per
                      POST as Nchan publishes
  --nodes N           nodes of the cluster or redis shape (default ${CLUSTER_DEFAULTS.nodes})
  --publish-via P     cluster shape: lambda (default: the Lambda handler, in the bench process) or http (POST /publish)
  --url URL           measure an existing node on 127.0.0.0/8 instead of starting one
  --publish-token T   its HERALD_PUBLISH_TOKEN (with --url)
  --secret S          its HERALD_JWT_SECRET, to sign user tokens (with --url)
  --duration S        sustained phase, seconds (default 10)
  --samples N         sequential unicast publishes for latency (default 2000)
  --rounds N          broadcasts, median reported (default 10)
  --publishers N      keep-alive publish connections in the sustained phase (default 4)
  --batch N           notifications per POST in the sustained phase, 1-100 (default 100; 1 with --shape nchan)
  --rate N            open-loop notifications/s in the sustained phase (default: closed loop, as fast as the node answers)
  --ttl S             ttl of the sustained notifications (default: the node's, 1 hour; 0 = live only, no history)
  --cost-count N      cluster shape: notifications in each window of the cost phase, sent one per Lambda
                      invocation and then in batches of 100 (default ${COST_DEFAULTS.count}; 0 leaves the phase out)
  --cost-rate N       cluster shape: notifications/s in the cost phase, open loop (default ${COST_DEFAULTS.rate})
  --cost-idle S       cluster shape: seconds with nothing published, to price the nodes' fixed cost
                      (empty long polls, heartbeats; default ${COST_DEFAULTS.idleS}; 0 leaves it out)
  --cost-only         cluster shape: open the streams, then run only the cost phase
  --profile PHASE     write a V8 CPU profile of the node during one phase, connect (opening the streams) or
                      sustained, and list the top self-time functions
  --node-flags=F…     extra flags for the local shape's node process, V8's included, space-separated,
                      after "=" (e.g. --node-flags="--max-semi-space-size=32 --trace-gc"); also Herald's
                      node under --compare
  --json              also print the results as JSON (JSON on stdout, everything else on stderr)
`;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A whole-number flag `--<name>` from parsed values, within [min, max]; `fallback` when absent. */
export function intFlag(values: Readonly<Record<string, string | boolean | undefined>>, name: string, fallback: number, min: number, max: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got "${String(raw)}"`);
  return n;
}

function loopbackUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`--url is not a URL: ${raw}`);
  }
  if (url.protocol !== 'http:' || !(url.hostname === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(url.hostname))) {
    throw new UsageError('--url must be http:// on 127.0.0.0/8 or localhost: this bench only ever talks to this machine');
  }
  return url.origin;
}

export function parseOptions(argv: readonly string[]): BenchOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      connections: { type: 'string' },
      clients: { type: 'string' },
      shape: { type: 'string' },
      url: { type: 'string' },
      'publish-token': { type: 'string' },
      secret: { type: 'string' },
      duration: { type: 'string' },
      samples: { type: 'string' },
      rounds: { type: 'string' },
      publishers: { type: 'string' },
      batch: { type: 'string' },
      rate: { type: 'string' },
      ttl: { type: 'string' },
      profile: { type: 'string' },
      'node-flags': { type: 'string' },
      nodes: { type: 'string' },
      'publish-via': { type: 'string' },
      'cost-count': { type: 'string' },
      'cost-rate': { type: 'string' },
      'cost-idle': { type: 'string' },
      'cost-only': { type: 'boolean' },
      compare: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';

  const shape = values.shape ?? 'local';
  if (!(shape in SHAPES)) throw new UsageError(`--shape must be one of: ${Object.keys(SHAPES).join(', ')}`);
  const cluster = shape === 'cluster';
  // Both run several node processes sharing the machine with their backing services.
  const multiNode = cluster || shape === 'redis';
  const shapeDefaults = multiNode ? (['connections', 'samples'] as const).filter((name) => values[name] === undefined).map((name) => `--${name} ${CLUSTER_DEFAULTS[name]}`) : [];
  if (!multiNode && values.nodes !== undefined) throw new UsageError('--nodes goes with --shape cluster or redis');
  if (!cluster && values['publish-via'] !== undefined) throw new UsageError('--publish-via goes with --shape cluster (the redis shape publishes with POST /publish)');
  const costFlags = (['cost-count', 'cost-rate', 'cost-idle', 'cost-only'] as const).filter((name) => values[name] !== undefined);
  if (!cluster && costFlags.length > 0) throw new UsageError(`--${costFlags[0]!} goes with --shape cluster: only it has AWS requests to count`);
  const costCount = intFlag(values, 'cost-count', cluster ? COST_DEFAULTS.count : 0, 0, 100_000);
  const costOnly = values['cost-only'] ?? false;
  if (costOnly && costCount === 0) throw new UsageError('--cost-only with --cost-count 0 would measure nothing');
  const nodes = intFlag(values, 'nodes', CLUSTER_DEFAULTS.nodes, 1, 16);
  const publishVia = values['publish-via'] ?? 'lambda';
  if (publishVia !== 'lambda' && publishVia !== 'http') throw new UsageError('--publish-via must be lambda or http');
  const connections = intFlag(values, 'connections', multiNode ? CLUSTER_DEFAULTS.connections : 10_000, 1, 100_000);
  const clients = intFlag(values, 'clients', Math.min(4, connections), 1, 200);
  if (Math.ceil(connections / clients) > MAX_STREAMS_PER_CLIENT) {
    throw new UsageError(`--clients ${clients} would put more than ${MAX_STREAMS_PER_CLIENT} streams in one process (20,000 open files each): use --clients ${Math.ceil(connections / MAX_STREAMS_PER_CLIENT)} or more`);
  }

  let target: BenchOptions['target'];
  if (values.url !== undefined) {
    if (values['publish-token'] === undefined || values.secret === undefined) {
      throw new UsageError('--url needs --publish-token and --secret (the node\'s HERALD_PUBLISH_TOKEN and HERALD_JWT_SECRET)');
    }
    target = { url: loopbackUrl(values.url), publishToken: values['publish-token'], secret: values.secret };
  } else if (values['publish-token'] !== undefined || values.secret !== undefined) {
    throw new UsageError('--publish-token and --secret only go with --url; the local shape makes its own');
  }
  if (target === undefined && Math.ceil(connections / (multiNode ? nodes : 1)) > LOCAL_MAX_CONNECTIONS) {
    throw new UsageError(`a node is one process with at most 20,000 open files: --connections ${LOCAL_MAX_CONNECTIONS} per node at most`);
  }
  if (target !== undefined && shape !== 'local') throw new UsageError(`--url measures an existing node; it does not go with --shape ${shape}`);
  const rateRaw = values.rate;

  const compare = values.compare;
  if (compare !== undefined) {
    if (!(COMPARE_TARGETS as readonly string[]).includes(compare)) throw new UsageError(`--compare must be one of: ${COMPARE_TARGETS.join(', ')}`);
    if (shape !== 'local') throw new UsageError('--compare runs beside the local shape: leave out --shape');
    if (target !== undefined) throw new UsageError('--compare starts both servers itself: it does not go with --url');
    if (values.ttl !== undefined) throw new UsageError('--ttl does not go with --compare: Nchan keeps messages as its config says (100 per channel for an hour, Herald\'s defaults)');
  }
  const nchan = shape === 'nchan';
  if (nchan && values.ttl !== undefined) throw new UsageError('--ttl does not go with --shape nchan: Nchan keeps messages as its config says (100 per channel for an hour)');
  const batch = intFlag(values, 'batch', nchan ? 1 : 100, 1, 100);
  if (nchan && batch !== 1) throw new UsageError('--shape nchan publishes one message per POST: --batch 1');

  return {
    connections,
    clients,
    shape,
    target,
    durationS: intFlag(values, 'duration', 10, 1, 300),
    json: values.json ?? false,
    samples: intFlag(values, 'samples', multiNode ? CLUSTER_DEFAULTS.samples : 2000, 1, 100_000),
    rounds: intFlag(values, 'rounds', 10, 1, 100),
    publishers: intFlag(values, 'publishers', 4, 1, 64),
    batch,
    rate: rateRaw === undefined ? undefined : intFlag(values, 'rate', 0, 1, 10_000_000),
    ttl: values.ttl === undefined ? undefined : intFlag(values, 'ttl', 0, 0, 7 * 24 * 3600),
    profile: profilePhase(values.profile),
    nodeFlags: nodeFlags(values['node-flags']),
    nodes,
    publishVia,
    costCount,
    costRate: intFlag(values, 'cost-rate', COST_DEFAULTS.rate, 1, 100_000),
    costIdleS: intFlag(values, 'cost-idle', COST_DEFAULTS.idleS, 0, 300),
    costOnly,
    shapeDefaults,
    compare: compare as BenchOptions['compare'],
  };
}
