/**
 * Prices the cost phase's windows (cost.ts) at us-east-1 list prices and
 * prints them beside the targets. Figures only; nothing is asserted.
 */
import type { OperationUsage, UsageSnapshot } from '../../services/adapters/aws/request-meter';
import { COST_DATA_BYTES, type CostResult, type CostWindowResult, type ReconnectWindowResult, type UsageWindow } from './cost';
import { formatCount, markdownTable } from './stats';

/**
 * us-east-1 list prices, $ per million. SNS and SQS bill each 64 KiB chunk of
 * a request's payload as one request, so a PublishBatch of 10 small messages
 * is one billed request (SNS FAQ, https://aws.amazon.com/sns/faqs/: "Each 64KB
 * chunk of published data is billed as 1 request"; the batching guide,
 * https://docs.aws.amazon.com/sns/latest/dg/sns-batch-api-actions.html, puts
 * the saving at up to 10×). The meter counts those chunks as `billedRequests`.
 * SNS delivery to SQS is free.
 */
export const PRICE_PER_MILLION = { dynamoWrite: 0.625, dynamoRead: 0.125, sns: 0.5, sqs: 0.4, lambdaRequest: 0.2 } as const;
/** Lambda on arm64, $ per GB-second; the publisher function has 256 MB (lib/constructs/herald-function.ts). */
const LAMBDA_GB_SECOND = 0.0000133334;
const LAMBDA_GB = 256 / 1024;
/** $ per million notifications, SNS + SQS + DynamoDB (Lambda apart). */
export const COST_TARGET = { single: 2.0, batched: 0.8 } as const;
const CPU_PER_BUS_MESSAGE_TARGET_MS = 0.5;
const HOURS_PER_MONTH = 730;

type Service = 'DynamoDB' | 'SNS' | 'SQS';

interface Line {
  readonly origin: string;
  readonly key: string;
  readonly usage: OperationUsage;
}

function serviceOf(key: string): Service | undefined {
  const service = key.slice(0, key.indexOf('.'));
  return service === 'DynamoDB' || service === 'SNS' || service === 'SQS' ? service : undefined;
}

/** Dollars for this usage at list prices (Lambda apart). */
function dollars(key: string, u: OperationUsage): number {
  switch (serviceOf(key)) {
    case 'DynamoDB':
      return (u.readUnits * PRICE_PER_MILLION.dynamoRead + u.writeUnits * PRICE_PER_MILLION.dynamoWrite) / 1e6;
    case 'SNS':
      return (u.billedRequests * PRICE_PER_MILLION.sns) / 1e6;
    case 'SQS':
      return (u.billedRequests * PRICE_PER_MILLION.sqs) / 1e6;
    default:
      return 0;
  }
}

function sumUsage(snapshots: readonly UsageSnapshot[]): Record<string, OperationUsage> {
  const total: Record<string, OperationUsage> = {};
  for (const snapshot of snapshots) {
    for (const [key, u] of Object.entries(snapshot)) {
      const t = total[key];
      total[key] = t === undefined ? { ...u } : {
        requests: t.requests + u.requests,
        billedRequests: t.billedRequests + u.billedRequests,
        readUnits: t.readUnits + u.readUnits,
        writeUnits: t.writeUnits + u.writeUnits,
        messages: t.messages + u.messages,
        emptyReceives: t.emptyReceives + u.emptyReceives,
      };
    }
  }
  return total;
}

/** Empty long polls are the nodes' fixed cost (the idle window prices them), not a notification's. */
function withoutEmptyReceives(key: string, u: OperationUsage): OperationUsage {
  if (key !== 'SQS.ReceiveMessage' || u.emptyReceives === 0) return u;
  return { ...u, requests: u.requests - u.emptyReceives, billedRequests: u.billedRequests - u.emptyReceives, emptyReceives: 0 };
}

function lines(window: UsageWindow): Line[] {
  const nodes = sumUsage(window.nodes.map((n) => n.usage));
  const active = (u: OperationUsage): boolean => u.requests > 0 || u.readUnits > 0 || u.writeUnits > 0;
  return [
    ...Object.entries(window.publisher).map(([key, usage]) => ({ origin: 'publisher (Lambda)', key, usage })),
    ...Object.entries(nodes).map(([key, usage]) => ({ origin: 'nodes', key, usage: withoutEmptyReceives(key, usage) })),
  ]
    .filter((line) => active(line.usage))
    // The publisher's rows first, as a notification meets them.
    .sort((a, b) => b.origin.localeCompare(a.origin) || a.key.localeCompare(b.key));
}

export interface WindowCost {
  /** $ per million notifications, by service and in all (Lambda apart). */
  readonly perMillion: Record<Service | 'total', number>;
  readonly lambdaPerMillion: { readonly requests: number; readonly duration: number };
  readonly nodeCpuPerBusMessageMs: number;
  readonly nodeCpuPerNotificationUs: number;
  readonly lost: number;
}

export function priceWindow(result: CostWindowResult): WindowCost {
  const n = Math.max(1, result.accepted);
  const perMillion: Record<Service | 'total', number> = { DynamoDB: 0, SNS: 0, SQS: 0, total: 0 };
  for (const line of lines(result.window)) {
    const service = serviceOf(line.key);
    if (service === undefined) continue;
    const perNotification = dollars(line.key, line.usage) / n;
    perMillion[service] += perNotification * 1e6;
    perMillion.total += perNotification * 1e6;
  }
  const { lambda, nodes } = result.window;
  const invocationsPerNotification = lambda.invocations / n;
  const gbSecondsPerInvocation = lambda.invocations > 0 ? (lambda.wallMs / lambda.invocations / 1000) * LAMBDA_GB : 0;
  const cpuSeconds = nodes.reduce((s, node) => s + node.cpuSeconds, 0);
  const busMessages = nodes.reduce((s, node) => s + node.busMessages, 0);
  return {
    perMillion,
    lambdaPerMillion: {
      requests: invocationsPerNotification * PRICE_PER_MILLION.lambdaRequest,
      duration: invocationsPerNotification * gbSecondsPerInvocation * LAMBDA_GB_SECOND * 1e6,
    },
    nodeCpuPerBusMessageMs: busMessages > 0 ? (cpuSeconds * 1000) / busMessages : NaN,
    nodeCpuPerNotificationUs: result.received > 0 ? (cpuSeconds * 1e6) / result.received : NaN,
    lost: result.sent - result.received,
  };
}

const money = (d: number): string => `$${d < 0.01 && d > 0 ? d.toFixed(4) : d.toFixed(3)}`;
const per = (x: number, n: number): string => (x / Math.max(1, n)).toFixed(x === 0 ? 0 : 4);

function renderWindow(title: string, result: CostWindowResult, target: number): string[] {
  const n = Math.max(1, result.accepted);
  const cost = priceWindow(result);
  const { window } = result;
  const rows = lines(window).map((l) => [
    l.origin,
    l.key,
    per(l.usage.requests, n),
    serviceOf(l.key) === 'DynamoDB' ? '' : per(l.usage.billedRequests, n),
    per(l.usage.readUnits, n),
    per(l.usage.writeUnits, n),
    money((dollars(l.key, l.usage) / n) * 1e6),
  ]);
  const refused = Object.entries(result.refused);
  const received = window.nodes.reduce((s, node) => s + node.deliveries, 0);
  const busMessages = window.nodes.reduce((s, node) => s + node.busMessages, 0);
  const meets = (ok: boolean): string => (ok ? 'meets' : 'does NOT meet');
  return [
    '',
    `${title}: ${formatCount(result.sent)} unicasts of ${COST_DATA_BYTES} bytes of data, ${formatCount(window.lambda.invocations)} Lambda invocations, ${formatCount(result.achievedRate)}/s achieved (asked ${formatCount(result.rate)}/s)${refused.length > 0 ? `; refused: ${refused.map(([k, v]) => `${k} ${v}`).join(', ')}` : ''}`,
    markdownTable(['from', 'service.operation', 'requests / notification', 'billed / notification', 'RRU / notification', 'WRU / notification', '$ per million notifications'], rows),
    `$ per million notifications: DynamoDB ${money(cost.perMillion.DynamoDB)} + SNS ${money(cost.perMillion.SNS)} + SQS ${money(cost.perMillion.SQS)} = ${money(cost.perMillion.total)} (target ≤ ${money(target)}: ${meets(cost.perMillion.total <= target)})`,
    `Lambda, apart: ${money(cost.lambdaPerMillion.requests)} for invocations + ${money(cost.lambdaPerMillion.duration)} for duration per million notifications (${window.lambda.invocations > 0 ? (window.lambda.wallMs / window.lambda.invocations).toFixed(1) : 'n/a'} ms a call here, against the emulators, at 256 MB arm64)`,
    // At the rate this path reaches here, idle work weighs on each message: the target is checked in the receive-path window.
    `node CPU per bus message: ${cost.nodeCpuPerBusMessageMs.toFixed(3)} ms (${formatCount(busMessages)} bus messages, ${formatCount(received)} deliveries; ${cost.nodeCpuPerNotificationUs.toFixed(0)} µs per notification)`,
    `deliveries lost: ${formatCount(cost.lost)} of ${formatCount(result.sent)} (${formatCount(result.received)} read by the clients)`,
  ];
}

/** The nodes' receive path alone: what the CPU target is about. Its SNS requests are the bench's, not counted. */
function renderBusWindow(result: CostWindowResult): string[] {
  const cost = priceWindow(result);
  const { nodes } = result.window;
  const busMessages = nodes.reduce((s, node) => s + node.busMessages, 0);
  const cpuSeconds = nodes.reduce((s, node) => s + node.cpuSeconds, 0);
  const nodeRows = nodes.map((node) => [node.id, formatCount(node.busMessages), (node.cpuSeconds * 1000).toFixed(0), node.busMessages > 0 ? ((node.cpuSeconds * 1000) / node.busMessages).toFixed(3) : 'n/a']);
  const sqs = lines(result.window).filter((l) => l.origin === 'nodes' && serviceOf(l.key) === 'SQS');
  const n = Math.max(1, result.accepted);
  const meets = cost.nodeCpuPerBusMessageMs <= CPU_PER_BUS_MESSAGE_TARGET_MS ? 'meets' : 'does NOT meet';
  return [
    '',
    `The nodes' receive path alone: ${formatCount(result.sent)} single-event deliver messages sent straight to SNS (PublishBatch of 10, each to its user's node), ${formatCount(result.achievedRate)}/s achieved (asked ${formatCount(result.rate)}/s) over ${nodes.length} nodes, ${formatCount(result.window.seconds)} s window`,
    markdownTable(['node', 'bus messages', 'CPU ms', 'CPU ms / bus message'], nodeRows),
    `node CPU per bus message: ${cost.nodeCpuPerBusMessageMs.toFixed(3)} ms (${formatCount(busMessages)} messages, ${cpuSeconds.toFixed(2)} CPU s in all, idle work such as pings and heartbeats included; target ≤ ${CPU_PER_BUS_MESSAGE_TARGET_MS} ms at 1,000 notifications/s: ${meets})`,
    `nodes' SQS requests per message: ${sqs.map((l) => `${l.key} ${per(l.usage.requests, n)}`).join(', ') || 'none'}`,
    `deliveries lost: ${formatCount(cost.lost)} of ${formatCount(result.sent)}`,
  ];
}

/** What one stream's close and reopen with `Last-Event-ID` costs the nodes (release, claim, replay). */
function renderReconnects(result: ReconnectWindowResult): string[] {
  const n = Math.max(1, result.reopened);
  const usage = sumUsage(result.window.nodes.map((node) => node.usage));
  const rows = Object.entries(usage)
    .map(([key, u]) => [key, withoutEmptyReceives(key, u)] as const)
    .filter(([key, u]) => serviceOf(key) === 'DynamoDB' && (u.requests > 0 || u.readUnits > 0 || u.writeUnits > 0))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, u]) => [key, per(u.requests, n), per(u.readUnits, n), per(u.writeUnits, n), money((dollars(key, u) / n) * 1e6)]);
  const total = Object.entries(usage).reduce((sum, [key, u]) => sum + (serviceOf(key) === 'DynamoDB' ? dollars(key, u) : 0), 0);
  const failures = Object.entries(result.failures);
  return [
    '',
    `Reconnects (a token renewal): ${formatCount(result.reopened)} of ${formatCount(result.asked)} streams closed and opened again with Last-Event-ID in ${result.window.seconds.toFixed(1)} s${failures.length > 0 ? `; failed: ${failures.map(([k, v]) => `${k} ${v}`).join(', ')}` : ''}`,
    markdownTable(['service.operation', 'requests / reconnect', 'RRU / reconnect', 'WRU / reconnect', '$ per million reconnects'], rows),
    `DynamoDB per million reconnects: ${money((total / n) * 1e6)} (the nodes' heartbeats in the window are included)`,
  ];
}

function renderIdle(idle: UsageWindow): string[] {
  const nodes = Math.max(1, idle.nodes.length);
  const perHour = (x: number): number => (x / nodes / idle.seconds) * 3600;
  const usage = sumUsage(idle.nodes.map((n) => n.usage));
  const rows = Object.entries(usage)
    .filter(([, u]) => u.requests > 0)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, u]) => [
      key,
      perHour(u.requests).toFixed(0),
      key === 'SQS.ReceiveMessage' ? perHour(u.emptyReceives).toFixed(0) : '',
      perHour(u.readUnits + u.writeUnits).toFixed(1),
      money(perHour(dollars(key, u)) * HOURS_PER_MONTH),
    ]);
  const month = Object.entries(usage).reduce((s, [key, u]) => s + perHour(dollars(key, u)) * HOURS_PER_MONTH, 0);
  const cpuShare = idle.nodes.reduce((s, node) => s + node.cpuSeconds, 0) / nodes / idle.seconds;
  return [
    '',
    `Fixed cost per node, not per notification (idle ${idle.seconds.toFixed(0)} s, nothing published, averaged over ${idle.nodes.length} nodes): ${money(month)} per node per month; node CPU while idle ${(cpuShare * 100).toFixed(1)} % of a core (it counts in the CPU per bus message above)`,
    markdownTable(['service.operation', 'requests / hour', 'of them empty', 'units / hour', '$ per node per month'], rows),
  ];
}

export function renderCost(cost: CostResult): string {
  const out = [
    '',
    `AWS cost per notification (cluster shape; counted by the SDK clients' request meters, DynamoDB units as DynamoDB reports them; us-east-1 list prices; ${formatCount(cost.users)} distinct online users, spread over the nodes):`,
    ...renderWindow('Single publishes, one per Lambda invocation', cost.single, COST_TARGET.single),
    ...renderWindow(`Batches of ${cost.batched.batch}`, cost.batched, COST_TARGET.batched),
    ...(cost.bus ? renderBusWindow(cost.bus) : []),
    ...renderReconnects(cost.reconnects),
    ...(cost.idle ? renderIdle(cost.idle) : []),
    '',
    'note: the nodes\' rows leave out empty long polls (priced in the fixed cost) but include whatever else they did in the window, heartbeats too; SNS/SQS "billed" counts each 64 KiB chunk of payload as a request, as AWS bills; SNS→SQS delivery is free',
  ];
  return out.join('\n');
}
