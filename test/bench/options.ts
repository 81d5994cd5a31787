/**
 * The bench's flags. Everything it does is bounded: counts are capped, and
 * every target must be on 127.0.0.0/8.
 */
import { parseArgs } from 'node:util';
import { MAX_STREAMS_PER_CLIENT } from './client-fleet';
import { SHAPES } from './shape';

/** The local node holds every stream in one process, which may open at most 20,000 files. */
const LOCAL_MAX_CONNECTIONS = 19_000;

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
  /** Write a CPU profile of the node during the sustained phase (local shape). */
  readonly profile: boolean;
}

export const USAGE = `npm run bench -- [flags]

  --connections N     streams to open, one user each (default 10000)
  --clients N         client processes, each from its own 127.0.0.x (default 4)
  --shape local       what to start (default local; only local for now)
  --url URL           measure an existing node on 127.0.0.0/8 instead of starting one
  --publish-token T   its HERALD_PUBLISH_TOKEN (with --url)
  --secret S          its HERALD_JWT_SECRET, to sign user tokens (with --url)
  --duration S        sustained phase, seconds (default 10)
  --samples N         sequential unicast publishes for latency (default 2000)
  --rounds N          broadcasts, median reported (default 10)
  --publishers N      keep-alive publish connections in the sustained phase (default 4)
  --batch N           notifications per POST in the sustained phase, 1-100 (default 100)
  --rate N            open-loop notifications/s in the sustained phase (default: closed loop, as fast as the node answers)
  --ttl S             ttl of the sustained notifications (default: the node's, 1 hour; 0 = live only, no history)
  --profile           write a V8 CPU profile of the node during the sustained phase and list the top self-time functions
  --json              also print the results as JSON (JSON on stdout, everything else on stderr)
`;

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

function int(values: Readonly<Record<string, string | boolean | undefined>>, name: string, fallback: number, min: number, max: number): number {
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
      profile: { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';

  const connections = int(values, 'connections', 10_000, 1, 100_000);
  const clients = int(values, 'clients', Math.min(4, connections), 1, 200);
  if (Math.ceil(connections / clients) > MAX_STREAMS_PER_CLIENT) {
    throw new UsageError(`--clients ${clients} would put more than ${MAX_STREAMS_PER_CLIENT} streams in one process (20,000 open files each): use --clients ${Math.ceil(connections / MAX_STREAMS_PER_CLIENT)} or more`);
  }
  const shape = values.shape ?? 'local';
  if (!(shape in SHAPES)) throw new UsageError(`--shape must be one of: ${Object.keys(SHAPES).join(', ')}`);

  let target: BenchOptions['target'];
  if (values.url !== undefined) {
    if (values['publish-token'] === undefined || values.secret === undefined) {
      throw new UsageError('--url needs --publish-token and --secret (the node\'s HERALD_PUBLISH_TOKEN and HERALD_JWT_SECRET)');
    }
    target = { url: loopbackUrl(values.url), publishToken: values['publish-token'], secret: values.secret };
  } else if (values['publish-token'] !== undefined || values.secret !== undefined) {
    throw new UsageError('--publish-token and --secret only go with --url; the local shape makes its own');
  }
  if (target === undefined && connections > LOCAL_MAX_CONNECTIONS) {
    throw new UsageError(`the local node is one process with at most 20,000 open files: --connections ${LOCAL_MAX_CONNECTIONS} at most`);
  }
  const rateRaw = values.rate;

  return {
    connections,
    clients,
    shape,
    target,
    durationS: int(values, 'duration', 10, 1, 300),
    json: values.json ?? false,
    samples: int(values, 'samples', 2000, 1, 100_000),
    rounds: int(values, 'rounds', 10, 1, 100),
    publishers: int(values, 'publishers', 4, 1, 64),
    batch: int(values, 'batch', 100, 1, 100),
    rate: rateRaw === undefined ? undefined : int(values, 'rate', 0, 1, 10_000_000),
    ttl: values.ttl === undefined ? undefined : int(values, 'ttl', 0, 0, 7 * 24 * 3600),
    profile: values.profile ?? false,
  };
}
