import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { eventually } from '../../scripts/fleet/deadline';
import { Gate, PortRig } from '../support/gated-ports';
import { launchChromium, newCheckedContext } from './support/chromium';
import { startDevNode, type DevNode } from './support/dev-node';
import { clientState, eventSources, messageIds, openDemo, recordEventSources, signIn, until, waitForMessage, waitForStatus } from './support/demo-page';

const TABS = 8;

async function publishSome(node: DevNode, label: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 1; i <= count; i++) ids.push(await node.publishMessage('dana', `${label} ${i}`));
  return ids;
}

async function roles(pages: readonly Page[]): Promise<string[]> {
  return Promise.all(pages.map(async (page) => (await clientState(page)).role));
}

describe('demo page in Chromium: shared-tab mode', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser.close();
  });

  it('serves 8 tabs of one user over 1 connection, each event once in every tab, and hands over within a second when the leader closes', async () => {
    const node = await startDevNode();
    const context = await newCheckedContext(browser);
    await recordEventSources(context);
    const pages: Page[] = [await openDemo(context, node.url, { share: true })];
    await signIn(pages[0]!, 'dana');
    await waitForStatus(pages[0]!, 'open', 'tab 1');
    for (let i = 2; i <= TABS; i++) {
      const page = await openDemo(context, node.url, { share: true });
      await waitForStatus(page, 'open', `tab ${i}`);
      pages.push(page);
    }

    expect((await roles(pages)).sort()).toEqual([...Array<string>(TABS - 1).fill('follower'), 'leader']);
    expect(await node.metric('herald_connections')).toBe(1);
    // Not one tab ever opened a stream of its own: 8 tabs, 1 stream since the start.
    expect(await node.metric('herald_connections_opened_total')).toBe(1);
    const sourceCounts = await Promise.all(pages.map(async (page) => (await eventSources(page)).length));
    expect(sourceCounts.filter((n) => n > 0)).toEqual([1]);

    const first = await publishSome(node, 'first', 5);
    await Promise.all(pages.map((page, i) => waitForMessage(page, first.at(-1)!, `the fifth event in tab ${i + 1}`)));
    for (const page of pages) expect(await messageIds(page)).toEqual(first);

    // Close the leader; publish at once, while the others elect a new one.
    const leaderIndex = (await roles(pages)).indexOf('leader');
    const [leader] = pages.splice(leaderIndex, 1);
    const closedAt = Date.now();
    await leader!.close();
    const duringHandover = await publishSome(node, 'during the handover', 3);
    await Promise.race(
      pages.map((page, i) => until(page, `tab ${i} to lead`, () => (window as unknown as { herald: { role: string; status: string } }).herald.role === 'leader', null, 3000)),
    );
    const newLeader = pages[(await roles(pages)).indexOf('leader')]!;
    await waitForStatus(newLeader, 'open', 'the new leader’s stream', 3000);
    const handoverMs = Date.now() - closedAt;
    expect(handoverMs).toBeLessThan(1000);
    expect((await roles(pages)).filter((role) => role === 'leader')).toHaveLength(1);

    const after = await publishSome(node, 'after the handover', 3);
    const everything = [...first, ...duringHandover, ...after];
    await Promise.all(pages.map((page, i) => waitForMessage(page, after.at(-1)!, `the last event in remaining tab ${i + 1}`)));
    for (const page of pages) expect(await messageIds(page)).toEqual(everything);
    await eventually(async () => (await node.metric('herald_connections')) === 1, 3000, 'one connection after the handover');
    expect(await node.metric('herald_connections_opened_total')).toBe(2);
    await context.close();
  });

  it('hands over without loss when no event came yet: the new leader resumes from the stream’s start position', async () => {
    const rig = new PortRig();
    const node = await startDevNode({ ports: rig.wrap });
    const context = await newCheckedContext(browser);
    const first = await openDemo(context, node.url, { share: true });
    await signIn(first, 'erin');
    await waitForStatus(first, 'open', 'tab 1');
    const second = await openDemo(context, node.url, { share: true });
    await waitForStatus(second, 'open', 'tab 2');
    expect(await roles([first, second])).toEqual(['leader', 'follower']);

    // The new leader's claim is held until an event was published with nobody connected.
    const claim = new Gate('owners.claim of the new leader');
    rig.once('before', 'owners.claim', claim.pass);
    await first.close();
    await claim.reached();
    const missed = await node.publishMessage('erin', 'published while no tab held the stream');
    claim.open();

    await waitForMessage(second, missed, 'the event published during the handover, in tab 2');
    expect(await messageIds(second)).toEqual([missed]);
    await context.close();
  });
});
