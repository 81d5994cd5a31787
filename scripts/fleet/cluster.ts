/**
 * The AWS shape on one machine: nodes of the built entry (dist/herald-node.mjs,
 * what the container runs) as separate processes in aws mode, sharing one
 * topic and one table on the emulators, optionally behind the round-robin
 * proxy that stands in for the ALB. Shared by `npm run cluster`
 * (scripts/cluster.ts), the cluster tests and the cluster benchmark, so it
 * imports neither vitest nor anything under test/ (eslint.config.js). Every
 * process it starts is stopped by its pid.
 *
 * Starting and stopping node processes (`launchNode`, `stopNodes`) is the
 * same in every mode: redis-fleet.ts starts its nodes with them.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import type { Emulators } from './emulators';
import { startAlbProxy, type AlbProxy, type AlbProxyOptions } from './alb-proxy';
import { ChildNode } from './child-node';
import { withDeadline } from './deadline';

/** How node processes are run, whatever their mode. */
export interface NodeProcessOptions {
  /** The node bundle to run, e.g. `dist/herald-node.mjs` or buildEntryPoint()'s copy. */
  readonly entry: string;
  /** Arguments before the entry, e.g. `['--enable-source-maps']`. */
  readonly nodeArgs?: readonly string[];
  /**
   * Start each node in a process group of its own, so a Ctrl-C in the terminal
   * reaches only the script, which then drains the nodes once (a second signal
   * would make a node exit at once). @default false
   */
  readonly detached?: boolean;
  /** Every stdout/stderr line of every node, for a script to print. */
  readonly onLine?: (nodeId: string, line: string, stream: 'stdout' | 'stderr') => void;
  /**
   * Keep each node's parsed log lines (`process.logs`) for the whole run. A
   * long-running script turns it off so memory does not grow with the logs. @default true
   */
  readonly retainLogs?: boolean;
}

export interface ClusterOptions extends NodeProcessOptions {
  readonly emulators: Emulators;
  /** Node ids, one process each, e.g. `['a', 'b', 'c']`. */
  readonly nodeIds: readonly string[];
  /** Names on the emulators; made if absent (`createTable`, `createTopic`). */
  readonly tableName: string;
  readonly topicName: string;
  readonly queuePrefix: string;
  /** The nodes' HS256 key (`HERALD_JWT_SECRET`). @default a random one (`Cluster.secret`, `token()`) */
  readonly secret?: string;
  /** `HERALD_PUBLISH_TOKEN`. @default a random one (`Cluster.publishToken`, `ClusterNode.publish`) */
  readonly publishToken?: string;
  /**
   * `HERALD_PORT` of each node, in `nodeIds` order. With port 0 the node's
   * address is read from its `http.listening` line, which needs
   * HERALD_LOG_LEVEL info or debug. @default 0 for each (a free port)
   */
  readonly ports?: readonly number[];
  /** Extra environment for every node (HERALD_DRAIN_MS, HERALD_RETRY_MS, …). */
  readonly env?: Readonly<Record<string, string>>;
  /** Environment for one node, over `env`: e.g. AWS endpoints through a TCP proxy. */
  readonly nodeEnv?: (nodeId: string) => Readonly<Record<string, string>>;
  /** Put the ALB stand-in in front of the nodes. @default undefined (no proxy) */
  readonly proxy?: Omit<AlbProxyOptions, 'targets'>;
}

export interface ClusterNode {
  readonly id: string;
  readonly url: string;
  readonly process: ChildNode;
  /** `POST /publish` on this node with the publisher token. */
  publish(body: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
}

export interface Cluster {
  readonly topicArn: string;
  readonly tableName: string;
  readonly queuePrefix: string;
  readonly secret: string;
  readonly publishToken: string;
  readonly nodes: readonly ClusterNode[];
  readonly proxy: AlbProxy | undefined;
  node(id: string): ClusterNode;
  /** A token for `userId`, signed with the cluster's secret. */
  token(userId: string): Promise<string>;
  /** Pids of node processes still running. */
  pids(): number[];
  /**
   * Stops every node by its pid and closes the proxy. `graceful` sends SIGTERM
   * (the node drains, deletes its queue and exits) and SIGKILLs what is left
   * after `graceMs`; otherwise SIGKILL at once. The emulators are the caller's.
   */
  stop(options?: { graceful?: boolean; graceMs?: number }): Promise<void>;
}

/** A secret or publisher token for nodes that were given none: random, URL-safe. */
export function randomSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** An HS256 token for `userId`, valid for an hour: what a cluster's or a fleet's `token()` returns. */
export async function signUserToken(userId: string, secret: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(userId).setIssuedAt(now).setExpirationTime(now + 3600).sign(new TextEncoder().encode(secret));
}

/** Environment of one node: only this (and PATH), never the caller's HERALD_* settings. */
function nodeEnvironment(options: ClusterOptions, secrets: { secret: string; publishToken: string }, topicArn: string, nodeId: string, port: number): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    ...options.emulators.env(),
    HERALD_MODE: 'aws',
    HERALD_HOST: '127.0.0.1',
    HERALD_PORT: String(port),
    HERALD_NODE_ID: nodeId,
    HERALD_JWT_SECRET: secrets.secret,
    HERALD_PUBLISH_TOKEN: secrets.publishToken,
    HERALD_TOPIC_ARN: topicArn,
    HERALD_TABLE_NAME: options.tableName,
    HERALD_QUEUE_PREFIX: options.queuePrefix,
    ...options.env,
    ...options.nodeEnv?.(nodeId),
  };
}

function spawnNode(options: NodeProcessOptions, env: Record<string, string>, nodeId: string): ChildNode {
  // aws and redis mode write nothing to their working directory; a fresh one makes sure of it.
  const cwd = mkdtempSync(join(tmpdir(), 'herald-cluster-'));
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.entry], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  child.on('close', () => rmSync(cwd, { recursive: true, force: true }));
  const node = new ChildNode(child);
  const onLine = options.onLine;
  if (onLine) {
    for (const stream of ['stdout', 'stderr'] as const) {
      let rest = '';
      child[stream].setEncoding('utf8');
      child[stream].on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) if (line.trim() !== '') onLine(nodeId, line, stream);
      });
    }
  }
  return node;
}

/**
 * A node on a known port is up once `/healthz` answers 200 (it listens only
 * after its queue and subscription exist); no log line needed, so this works
 * at any HERALD_LOG_LEVEL. On port 0 the port is only in the `http.listening` line.
 */
async function listening(child: ChildNode, port: number): Promise<string> {
  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + 20_000;
  for (;;) {
    if (child.exit) throw new Error(`the node on port ${port} exited (${child.exit.code ?? child.exit.signal}) before listening: ${child.stderrLines.join('\n')}`);
    const status = await fetch(new URL('/healthz', url), { signal: AbortSignal.timeout(1_000) }).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) return url;
    if (Date.now() > until) throw new Error(`timed out after 20000 ms waiting for the node on port ${port} to answer /healthz`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function clusterNode(id: string, url: string, child: ChildNode, publishToken: string): ClusterNode {
  return {
    id,
    url,
    process: child,
    async publish(body) {
      const response = await fetch(new URL('/publish', url), {
        method: 'POST',
        headers: { Authorization: `Bearer ${publishToken}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
    },
  };
}

function kill(child: ChildNode, signal: NodeJS.Signals): void {
  if (child.exit || child.pid < 0) return;
  try {
    process.kill(child.pid, signal);
  } catch {
    // Already gone.
  }
}

/**
 * Spawns one node process with exactly `env` (PATH included) and waits until
 * it listens. `label` names it in `onLine` and is its `id`, unless
 * `idFromLog`: then its id is the one it picked, from its `http.listening`
 * line (port 0 only). `started` gets the child before it listens, so a caller
 * can stop it whatever happens next.
 */
export async function launchNode(
  options: NodeProcessOptions,
  launch: { env: Record<string, string>; label: string; port: number; publishToken: string; idFromLog?: boolean },
  started: (child: ChildNode) => void,
): Promise<ClusterNode> {
  const child = spawnNode(options, launch.env, launch.label);
  started(child);
  const url = launch.port === 0 ? await child.url(20_000) : await listening(child, launch.port);
  let id = launch.label;
  if (launch.idFromLog === true) {
    const line = child.logs.find((l) => l.event === 'http.listening');
    if (typeof line?.nodeId !== 'string') throw new Error(`node ${launch.label} logged no node id in http.listening`);
    id = line.nodeId;
  }
  if (options.retainLogs === false) {
    child.logs.length = 0;
    // After ChildNode's own listener: each line is kept only until the next chunk.
    child.child.stdout?.on('data', () => (child.logs.length = 0));
  }
  return clusterNode(id, url, child, launch.publishToken);
}

/** Stops node processes by pid, as `Cluster.stop` describes. */
export async function stopNodes(children: readonly ChildNode[], { graceful = false, graceMs = 10_000 }: { graceful?: boolean; graceMs?: number } = {}): Promise<void> {
  const running = children.filter((c) => !c.exit);
  for (const child of running) kill(child, graceful ? 'SIGTERM' : 'SIGKILL');
  await Promise.all(
    running.map(async (child) => {
      const timer = setTimeout(() => kill(child, 'SIGKILL'), graceful ? graceMs : 0);
      await withDeadline(child.exited, graceMs + 5_000, `node pid ${child.pid} to exit`).finally(() => clearTimeout(timer));
    }),
  );
}

/** Makes the topic and table, starts the nodes (in parallel) and, if asked, the proxy in front of them. */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const topicArn = await options.emulators.createTopic(options.topicName);
  await options.emulators.createTable(options.tableName);
  const secret = options.secret ?? randomSecret();
  const publishToken = options.publishToken ?? randomSecret();
  const nodes: ClusterNode[] = [];
  const children: ChildNode[] = [];
  let proxy: AlbProxy | undefined;

  const launch = async (nodeId: string, port: number): Promise<ClusterNode> => {
    const env = nodeEnvironment(options, { secret, publishToken }, topicArn, nodeId, port);
    const node = await launchNode(options, { env, label: nodeId, port, publishToken }, (child) => children.push(child));
    nodes.push(node);
    return node;
  };

  const stop: Cluster['stop'] = async (stopOptions = {}) => {
    await stopNodes(children, stopOptions);
    await proxy?.close();
  };

  try {
    await Promise.all(options.nodeIds.map((id, i) => launch(id, options.ports?.[i] ?? 0)));
    // In nodeIds order, whatever order they came up in.
    nodes.sort((a, b) => options.nodeIds.indexOf(a.id) - options.nodeIds.indexOf(b.id));
    if (options.proxy) proxy = await startAlbProxy({ ...options.proxy, targets: nodes.map((n) => n.url) });
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }

  return {
    topicArn,
    tableName: options.tableName,
    queuePrefix: options.queuePrefix,
    secret,
    publishToken,
    nodes,
    proxy,
    node: (id) => {
      const found = nodes.find((n) => n.id === id);
      if (!found) throw new Error(`no node ${id} in this cluster (${nodes.map((n) => n.id).join(', ')})`);
      return found;
    },
    token: (userId) => signUserToken(userId, secret),
    pids: () => children.filter((c) => !c.exit).map((c) => c.pid),
    stop,
  };
}
