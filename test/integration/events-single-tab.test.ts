import { describe, expect, it, onTestFinished } from 'vitest';
import { EventSource, type FetchLike } from 'eventsource';
import { startTestNode, type TestNode } from '../support/start-node';
import { openStream, type SseStream } from '../support/sse-client';
import { eventually, withDeadline } from '../../scripts/fleet/deadline';
import { Gate, PortRig } from '../support/gated-ports';
import { MemoryNetwork } from '../../services/adapters/memory/memory-bus';
import { MemoryOwners } from '../../services/adapters/memory/memory-owners';

async function connectionId(stream: SseStream): Promise<string> {
  return (JSON.parse((await stream.next('ready')).data) as { connectionId: string }).connectionId;
}

async function publish(node: TestNode, userId: string, event = 'message'): Promise<string> {
  const response = await node.publish({ to: { users: [userId] }, event, data: {} });
  expect(response.status).toBe(202);
  return response.body.id as string;
}

interface BrowserTab {
  readonly source: EventSource;
  /** Every request this EventSource made: its Last-Event-ID and the status it got. */
  readonly requests: Array<{ lastEventId: string | undefined; status?: number }>;
  readonly received: Array<{ type: string; lastEventId: string; data: string }>;
}

/**
 * A real `EventSource` (the `eventsource` package, which follows the HTML
 * spec's reconnect rules), given the token through its `fetch` since a browser
 * would send a cookie instead. Every request it makes is counted.
 */
function browserTab(node: TestNode, token: string, eventNames: readonly string[]): BrowserTab {
  const requests: BrowserTab['requests'] = [];
  const received: BrowserTab['received'] = [];
  const fetchWithToken: FetchLike = async (url, init) => {
    const request: BrowserTab['requests'][number] = { lastEventId: init.headers['Last-Event-ID'] };
    requests.push(request);
    const response = await fetch(url, { ...init, headers: { ...init.headers, Authorization: `Bearer ${token}` } });
    request.status = response.status;
    return response;
  };
  const source = new EventSource(new URL('/events', node.url), { fetch: fetchWithToken });
  for (const type of eventNames) {
    source.addEventListener(type, (event) => received.push({ type, lastEventId: event.lastEventId, data: String(event.data) }));
  }
  onTestFinished(() => source.close());
  return { source, requests, received };
}

describe('single-tab policy', () => {
  it('gives a second stream ready, and closes the first with replaced:<its connectionId>', async () => {
    const node = await startTestNode();
    const tab1 = await openStream(node.url, { token: await node.token('alice'), label: 'tab 1' });
    const first = await connectionId(tab1);

    const tab2 = await openStream(node.url, { token: await node.token('alice'), label: 'tab 2' });
    expect(tab2.status).toBe(200);
    const second = await connectionId(tab2);
    expect(second).not.toBe(first);

    const replaced = await tab1.next('replaced');
    expect(replaced.id).toBe(`replaced:${first}`);
    expect(JSON.parse(replaced.data)).toEqual({ connectionId: first });
    await tab1.closed();
    expect(tab1.events.at(-1)?.event).toBe('replaced');
    expect(tab2.names()).not.toContain('replaced');
  });

  it('sends events after the takeover to the new tab only', async () => {
    const node = await startTestNode();
    const tab1 = await openStream(node.url, { token: await node.token('alice'), label: 'tab 1' });
    await tab1.next('ready');
    const before = await publish(node, 'alice');
    await tab1.waitFor((e) => e.id === before, 'the event before the takeover');

    const tab2 = await openStream(node.url, { token: await node.token('alice'), label: 'tab 2' });
    await tab2.next('ready');
    await tab1.closed();
    const after = await publish(node, 'alice');
    await tab2.waitFor((e) => e.id === after, 'the event after the takeover');

    expect(tab1.notifications().map((e) => e.id)).toEqual([before]);
    expect(tab2.notifications().map((e) => e.id)).toEqual([after]);
  });

  it.each([
    ['header', (id: string) => ({ lastEventId: id })],
    ['query parameter', (id: string) => ({ query: { lastEventId: id } })],
  ])('answers a reconnect presenting replaced:… as Last-Event-ID (%s) with 204 and no body', async (_, position) => {
    const node = await startTestNode();
    const tab1 = await openStream(node.url, { token: await node.token('alice'), label: 'tab 1' });
    await connectionId(tab1);
    const tab2 = await openStream(node.url, { token: await node.token('alice'), label: 'tab 2' });
    await tab2.next('ready');
    const replaced = await tab1.next('replaced');

    const retry = await openStream(node.url, { token: await node.token('alice'), ...position(replaced.id!), label: 'tab 1 reconnecting' });
    expect(retry.status).toBe(204);
    expect(retry.body).toBe('');
    // And it did not take the stream back.
    const sentinel = await publish(node, 'alice');
    await tab2.waitFor((e) => e.id === sentinel, 'the sentinel on tab 2');
    expect(tab2.names()).not.toContain('replaced');
    expect(await node.metric('herald_connections_opened_total')).toBe(2);
  });

  it('stops a replaced browser EventSource for good: it reaches CLOSED and never comes back', async () => {
    // A short retry so the EventSource reconnects quickly; pings give the test a clock it can wait on.
    const node = await startTestNode({ env: { HERALD_RETRY_MS: '100', HERALD_HEARTBEAT_MS: '1000' } });
    const tab1 = browserTab(node, await node.token('alice'), ['ready', 'replaced', 'message']);
    await eventually(() => tab1.received.some((e) => e.type === 'ready'), 3000, 'ready on the EventSource tab');
    const first = (JSON.parse(tab1.received[0]!.data) as { connectionId: string }).connectionId;

    const tab2 = await openStream(node.url, { token: await node.token('alice'), label: 'tab 2' });
    await tab2.next('ready');

    await eventually(() => tab1.source.readyState === EventSource.CLOSED, 3000, 'the EventSource tab to reach CLOSED');
    expect(tab1.received.find((e) => e.type === 'replaced')?.lastEventId).toBe(`replaced:${first}`);
    // One reconnect, presenting the replaced id, answered 204: per the HTML spec that stops it.
    expect(tab1.requests).toEqual([
      { lastEventId: undefined, status: 200 },
      { lastEventId: `replaced:${first}`, status: 204 },
    ]);

    // Sentinel: an event reaches tab 2, and then two pings, which the node spaces at least half a
    // period (500 ms) apart: more than two full reconnect windows of the EventSource (retry ≤ 150 ms).
    const sentinel = await publish(node, 'alice');
    await tab2.waitFor((e) => e.id === sentinel, 'the sentinel on tab 2');
    const from = tab2.events.length;
    await tab2.waitFor(() => tab2.events.slice(from).filter((e) => e.event === 'ping').length >= 2, 'two pings after the sentinel', { timeoutMs: 3000 });

    expect(tab1.requests).toHaveLength(2);
    expect(tab1.source.readyState).toBe(EventSource.CLOSED);
    expect(tab1.received.some((e) => e.lastEventId === sentinel)).toBe(false);
    expect(tab2.names()).not.toContain('replaced');
    expect(await node.metric('herald_connections_opened_total')).toBe(2);
    expect(node.logs.filter((l) => l.event === 'connection.opened')).toHaveLength(2);
  });

  it('lets the newest of many quick tabs win, each older one told replaced', async () => {
    const node = await startTestNode();
    const tabs: SseStream[] = [];
    for (let i = 1; i <= 4; i++) {
      const tab = await openStream(node.url, { token: await node.token('alice'), label: `tab ${i}` });
      await tab.next('ready');
      tabs.push(tab);
    }
    const last = tabs.at(-1)!;
    await withDeadline(Promise.all(tabs.slice(0, -1).map((t) => t.next('replaced'))), 3000, 'replaced on every older tab');
    const sentinel = await publish(node, 'alice');
    await last.waitFor((e) => e.id === sentinel, 'the sentinel on the newest tab');
    expect(await node.metric('herald_connections')).toBe(1);
  });

  it('replaces a tab held by another node, through the bus', async () => {
    // Two nodes of one deployment: one bus network, one ownership store.
    const network = new MemoryNetwork();
    const owners = new MemoryOwners();
    const a = await startTestNode({ network, nodeId: 'node-a', ports: (d) => ({ ...d, owners }) });
    const b = await startTestNode({ network, nodeId: 'node-b', ports: (d) => ({ ...d, owners }) });

    const tab1 = await openStream(a.url, { token: await a.token('alice'), label: 'tab 1 on node A' });
    const first = await connectionId(tab1);
    const tab2 = await openStream(b.url, { token: await b.token('alice'), label: 'tab 2 on node B' });
    await tab2.next('ready');

    const replaced = await tab1.next('replaced');
    expect(replaced.id).toBe(`replaced:${first}`);
    await tab1.closed();
    const retry = await openStream(b.url, { token: await b.token('alice'), lastEventId: replaced.id!, label: 'tab 1 reconnecting to node B' });
    expect(retry.status).toBe(204);

    // Published on node A, the event goes to node B only.
    const sentinel = await publish(a, 'alice');
    await tab2.waitFor((e) => e.id === sentinel, 'the sentinel on tab 2');
    expect(tab1.notifications()).toEqual([]);
  });

  it('tells a tab displaced while its own claim was in flight that it was replaced, instead of opening it', async () => {
    const rig = new PortRig();
    const node = await startTestNode({ ports: rig.wrap });

    // Tab 1's claim is stored, then parked before the node opens its stream (the gate holds one call).
    const afterClaim = new Gate('owners.claim of tab 1');
    rig.once('after', 'owners.claim', afterClaim.pass);
    const opening = openStream(node.url, { token: await node.token('alice'), label: 'tab 1' });
    await afterClaim.reached();

    // Tab 2 claims after it, so tab 2 stays.
    const tab2 = await openStream(node.url, { token: await node.token('alice'), label: 'tab 2' });
    await tab2.next('ready');
    afterClaim.open();

    const tab1 = await opening;
    expect(tab1.status).toBe(200);
    const replaced = await tab1.next('replaced');
    const { connectionId: displacedId } = JSON.parse(replaced.data) as { connectionId: string };
    expect(replaced.id).toBe(`replaced:${displacedId}`);
    await tab1.closed();
    expect(tab1.names()).toEqual(['replaced']);

    const sentinel = await publish(node, 'alice');
    await tab2.waitFor((e) => e.id === sentinel, 'the sentinel on tab 2');
    expect(tab2.names()).not.toContain('replaced');
  });
});
