/**
 * The node's entry point: the only module with side effects on import. `npm
 * start` runs its bundle (dist/herald-node.mjs), and so does the container.
 */
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createAwsClients } from '../adapters/aws/sdk-clients';
import { createLogger } from '../shared/log';
import { ConfigError, loadConfig, type Config } from './config';
import { composeAws, composeLocal, composeRedis, type Ports } from './compose';
import { EmfReporter, emfServiceName } from './emf';
import { resolveNodeId } from './node-id';
import { watchForEcsStop } from './ecs-stop-watch';
import { EARLY_DRAIN_MARGIN_MS } from './herald-node';
import { startHerald } from './server';

function fail(event: string, fields: Record<string, unknown>): never {
  process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level: 'error', event, ...fields }) + '\n');
  process.exit(1);
}

let config: Config;
try {
  config = loadConfig(process.env);
} catch (error) {
  if (error instanceof ConfigError) fail('config.invalid', { variable: error.variable, message: error.message });
  throw error;
}

const log = createLogger({ level: config.logLevel });
const nodeId = await resolveNodeId(process.env, fetch, { log });

async function composePorts(): Promise<Ports> {
  if (config.redis !== undefined) return composeRedis(config, config.redis, log.child({ nodeId }));
  if (config.aws !== undefined) return composeAws(config, config.aws, createAwsClients(process.env), log.child({ nodeId }));
  return composeLocal(config, log);
}

let herald: Awaited<ReturnType<typeof startHerald>>;
try {
  herald = await startHerald({ config, ports: await composePorts(), log, nodeId });
} catch (error) {
  // A second `npm start` beside the first is the usual cause: say what to change, not a stack.
  if ((error as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE') {
    fail('node.port_in_use', {
      variable: 'HERALD_PORT',
      message: `${config.host}:${config.port} is already in use by another process: set HERALD_PORT to another port (0 picks a free one)`,
    });
  }
  // Its backing services unreachable, or its subscription never confirmed: exit so the scheduler starts another.
  log.error('node.start_failed', { nodeId, error });
  process.exit(1);
}

if (config.mode === 'aws') {
  // ECS deregisters a task from the ALB before it sends SIGTERM: start the drain
  // when the task is marked to stop, inside the deregistration delay (see ecs-stop-watch.ts).
  watchForEcsStop(process.env, () => void herald.node.drain(config.drainMs - EARLY_DRAIN_MARGIN_MS), { log });

  // Embedded metric format: one JSON line a minute that CloudWatch Logs turns
  // into metrics. The service scales on ActiveConnections (per task), not CPU.
  const emf = new EmfReporter(herald.node.metrics, emfServiceName(process.env));
  const everyMinute = setInterval(() => process.stdout.write(emf.line(Date.now(), herald.node.hub.size) + '\n'), 60_000);
  everyMinute.unref();
}

if (config.dev) {
  // Secrets go to a file only the owner can read, never to the log.
  const dir = join(process.cwd(), '.herald');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // The modes above and below apply only on creation: tighten a directory left from before,
  // and replace (not rewrite) an old file, so the secrets never sit in one others can read.
  chmodSync(dir, 0o700);
  const file = join(dir, 'dev.json');
  rmSync(file, { force: true });
  const secret = config.auth.kind === 'hs256' ? Buffer.from(config.auth.secret).toString('base64url') : '';
  writeFileSync(file, JSON.stringify({ url: herald.url, jwtSecret: secret, publishToken: config.publishToken }, null, 2), { mode: 0o600, flag: 'wx' });
  log.warn('node.dev_mode', {
    message:
      'DEV MODE: no HERALD_JWT_SECRET set, so this process made random secrets (in .herald/dev.json). ' +
      'Get a user token with `npm run token -- alice` and the publisher token with `npm run token -- --publisher`. Never run this in production.',
    url: herald.url,
  });
}

let signals = 0;
const onSignal = (signal: NodeJS.Signals): void => {
  signals++;
  if (signals > 1) {
    log.warn('node.forced_exit', { signal });
    process.exit(1);
  }
  log.info('node.signal', { signal, drainMs: config.drainMs, hint: 'send the signal again to exit at once' });
  herald.shutdown().then(
    () => process.exit(0),
    (error: unknown) => {
      log.error('node.shutdown_failed', { error });
      process.exit(1);
    },
  );
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);
