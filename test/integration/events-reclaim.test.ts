import { describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from '../support/start-node';
import { openStream, type SseStream } from '../support/sse-client';
import { eventually } from '../../scripts/fleet/deadline';
import { Gate, PortRig } from '../support/gated-ports';
import { MemoryNetwork } from '../../services/adapters/memory/memory-bus';
import { MemoryOwners } from '../../services/adapters/memory/memory-owners';

/*
 * Under the single-tab policy a claim takes the older tab's place in Owners
 * before the newer stream opens. When the newer one never goes live (its client
 * left, or its node began draining), the older tab must not stay open with no
 * record (no unicast would reach it): it is told `closing` `reclaim` and comes
 * back at once, claiming its place again.
 */

async function expectReclaimed(tab: SseStream): Promise<void> {
  const closing = await tab.next('closing');
  expect(JSON.parse(closing.data)).toEqual({ reason: 'reclaim' });
  // Comes back at once, give or take: RECLAIM_RETRY_MS (200) ± 50 %.
  expect(closing.retry).toBeGreaterThanOrEqual(100);
  expect(closing.retry).toBeLessThanOrEqual(300);
  await tab.closed();
  expect(tab.names()).not.toContain('replaced');
}

/** The old tab reconnects as a browser would, and is the user's tab again: online, and reached by a unicast. */
async function expectBackInPlace(node: TestNode, label: string): Promise<void> {
  const back = await openStream(node.url, { token: await node.token('alice'), label });
  await back.next('ready');
  const sentinel = await node.publish({ to: { users: ['alice'] }, event: 'message', data: {} });
  expect(sentinel.body).toMatchObject({ online: 1 });
  await back.waitFor((e) => e.id === sentinel.body.id, `the sentinel on ${label}`);
}

/** One node: alice's tab 1 live, and the next claim (tab 2's, which the test opens) to be parked just after it is stored. */
async function tab1LiveTab2ClaimParked(): Promise<{ node: TestNode; tab1: SseStream; afterClaim: Gate }> {
  const rig = new PortRig();
  const node = await startTestNode({ ports: rig.wrap });
  const tab1 = await openStream(node.url, { token: await node.token('alice'), label: 'tab 1' });
  await tab1.next('ready');
  const afterClaim = new Gate('owners.claim of tab 2');
  rig.once('after', 'owners.claim', afterClaim.pass);
  return { node, tab1, afterClaim };
}

/**
 * Two nodes of one deployment (one bus network, one ownership store): alice's
 * tab 1 live on node A, her tab 2 on node B (which drains within 1 s) parked
 * just after its claim stored, so tab 1's record is already overwritten.
 */
async function tabOnATab2ClaimingOnB(): Promise<{ a: TestNode; b: TestNode; tab1: SseStream; afterClaim: Gate; opening: Promise<SseStream> }> {
  const network = new MemoryNetwork();
  const owners = new MemoryOwners();
  const rig = new PortRig();
  const a = await startTestNode({ network, nodeId: 'node-a', ports: (d) => ({ ...d, owners }) });
  const b = await startTestNode({ network, nodeId: 'node-b', env: { HERALD_DRAIN_MS: '1000' }, ports: (d) => rig.wrap({ ...d, owners }) });
  const tab1 = await openStream(a.url, { token: await a.token('alice'), label: 'tab 1 on node A' });
  await tab1.next('ready');
  const afterClaim = new Gate('owners.claim of tab 2 on node B');
  rig.once('after', 'owners.claim', afterClaim.pass);
  const opening = openStream(b.url, { token: await b.token('alice'), label: 'tab 2 on node B' });
  await afterClaim.reached();
  return { a, b, tab1, afterClaim, opening };
}

describe('a tab displaced by a stream that never opened', () => {
  it('is told to reclaim its place when the newer tab leaves while its claim is in flight', async () => {
    const { node, tab1, afterClaim } = await tab1LiveTab2ClaimParked();

    // Tab 2's claim is stored (tab 1's record overwritten), then parked; tab 2's client leaves meanwhile.
    const leaving = new AbortController();
    const opening = openStream(node.url, { token: await node.token('alice'), label: 'tab 2', signal: leaving.signal }).catch(() => 'left');
    await afterClaim.reached();
    leaving.abort();
    expect(await opening).toBe('left');
    await eventually(async () => (await node.metric('herald_connections')) === 1, 3000, 'the node to see tab 2 leave');
    afterClaim.open();

    await expectReclaimed(tab1);
    await expectBackInPlace(node, 'tab 1 reconnected');
  });

  it('is told to reclaim its place, on another node, when the newer tab’s node begins draining during its claim', async () => {
    const { a, b, tab1, afterClaim, opening } = await tabOnATab2ClaimingOnB();
    const draining = b.node.drain();
    afterClaim.open();

    const tab2 = await opening;
    expect(tab2.status).toBe(503);
    expect(JSON.parse(tab2.body)).toMatchObject({ error: 'draining' });
    await expectReclaimed(tab1);
    await expectBackInPlace(a, 'tab 1 reconnected to node A');
    await draining;
  });

  it('is told it was replaced, not to reclaim, when an even newer tab displaced the one that claimed its place', async () => {
    const { node, tab1, afterClaim } = await tab1LiveTab2ClaimParked();

    const opening = openStream(node.url, { token: await node.token('alice'), label: 'tab 2' });
    await afterClaim.reached();
    const tab3 = await openStream(node.url, { token: await node.token('alice'), label: 'tab 3' });
    await tab3.next('ready');
    afterClaim.open();

    const tab2 = await opening;
    await tab2.next('replaced');
    await tab1.next('replaced');
    await Promise.all([tab1.closed(), tab2.closed()]);
    expect(tab1.names()).not.toContain('closing');
    const sentinel = await node.publish({ to: { users: ['alice'] }, event: 'message', data: {} });
    await tab3.waitFor((e) => e.id === sentinel.body.id, 'the sentinel on tab 3');
  });

  it('is told it was replaced when an even newer tab on another node displaced the one that claimed its place, though that one’s node is draining', async () => {
    const { a, b, tab1, afterClaim, opening } = await tabOnATab2ClaimingOnB();
    const tab3 = await openStream(a.url, { token: await a.token('alice'), label: 'tab 3 on node A' });
    await tab3.next('ready');
    await eventually(() => b.logs.some((l) => l.event === 'connection.closed' && l.reason === 'replaced'), 3000, 'node B to close tab 2 as replaced');
    const draining = b.node.drain();
    afterClaim.open();

    const tab2 = await opening;
    await tab2.next('replaced');
    await tab1.next('replaced');
    await tab1.closed();
    expect(tab1.names()).not.toContain('closing');
    const sentinel = await a.publish({ to: { users: ['alice'] }, event: 'message', data: {} });
    await tab3.waitFor((e) => e.id === sentinel.body.id, 'the sentinel on tab 3');
    expect(tab3.names()).not.toContain('replaced');
    await draining;
  });
});
