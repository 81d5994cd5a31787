import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { Gate, PortRig } from '../support/gated-ports';
import { eventually } from '../../scripts/fleet/deadline';
import { launchChromium, newCheckedContext, type ExpectedError } from './support/chromium';
import { startDevNode, type DevNode } from './support/dev-node';
import { startStallProxy } from './support/stall-proxy';
import { eventSources, messageIds, openDemo, recordEventSources, recordStatuses, signIn, waitForMessage, waitForMessageCount, waitForStatus } from './support/demo-page';

const HEARTBEAT_MS = 1000;
const CLOSED = 2;
/** The console errors these tests provoke: a stream cut mid-body (dropStreams) and refused stream requests. */
const STREAM_CUT: ExpectedError = { text: /^Failed to load resource: net::ERR_INCOMPLETE_CHUNKED_ENCODING$/, url: /\/events(\?|$)/ };
const streamRefused = (status: 401 | 503): ExpectedError => ({ text: new RegExp(`^Failed to load resource: the server responded with a status of ${status} `), url: /\/events(\?|$)/ });

async function publishSome(node: DevNode, user: string, label: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 1; i <= count; i++) ids.push(await node.publishMessage(user, `${label} ${i}`));
  return ids;
}

/**
 * The cut (`away`) happens after three events arrived. Then, deterministically:
 * events published while the page is away; the page's replay read is held at a
 * gate while more are published (they arrive during the replay, held live by
 * the node); then live events. The page must show every one, once, in order.
 */
async function cutAndResume(node: DevNode, rig: PortRig, page: Page, away: () => void): Promise<{ published: string[]; reconnectedAfterMs: number }> {
  const before = await publishSome(node, 'alice', 'before', 3);
  await waitForMessageCount(page, 3, 'the first three events');
  const replay = new Gate('the replay read of the resumed stream');
  rig.once('after', 'history.since', replay.pass, (call) => call.userId === 'alice');

  const cutAt = Date.now();
  away();
  const whileAway = await publishSome(node, 'alice', 'while away', 5);
  await replay.reached(10_000);
  const reconnectedAfterMs = Date.now() - cutAt;
  const duringReplay = await publishSome(node, 'alice', 'during the replay', 5);
  replay.open();
  const live = await publishSome(node, 'alice', 'live', 3);

  const published = [...before, ...whileAway, ...duringReplay, ...live];
  await waitForMessage(page, published.at(-1)!, 'the last live event', 5000);
  return { published, reconnectedAfterMs };
}

describe('demo page in Chromium: reconnects', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser.close();
  });

  it('resumes a stream the server dropped: events from while it was away and from during its replay arrive once, in order', async () => {
    const rig = new PortRig();
    const node = await startDevNode({ ports: rig.wrap });
    const context = await newCheckedContext(browser, { expectedErrors: [STREAM_CUT] });
    await recordEventSources(context);
    const page = await openDemo(context, node.url, { share: false });
    await signIn(page, 'alice');
    await waitForStatus(page, 'open', 'the stream');
    const requestsBefore = node.eventsRequests.length;

    const { published } = await cutAndResume(node, rig, page, () => expect(node.dropStreams()).toBe(1));

    expect(await messageIds(page)).toEqual(published);
    // The browser's own reconnect did it (same EventSource, Last-Event-ID header).
    const resumed = node.eventsRequests.slice(requestsBefore);
    expect(resumed).toHaveLength(1);
    expect(resumed[0]?.lastEventIdHeader).toBe(published[2]);
    expect(await eventSources(page)).toHaveLength(1);
    await context.close();
  });

  it('resumes a stream caught silent by the watchdog: events from while it was away and from during its replay arrive once, in order', async () => {
    const rig = new PortRig();
    const node = await startDevNode({ ports: rig.wrap });
    const proxy = await startStallProxy(node.url);
    const context = await newCheckedContext(browser);
    await recordEventSources(context);
    const page = await openDemo(context, proxy.url, { share: false });
    await signIn(page, 'alice');
    await waitForStatus(page, 'open', 'the stream');

    const { published } = await cutAndResume(node, rig, page, () => expect(proxy.stall()).toBe(1));

    expect(await messageIds(page)).toEqual(published);
    const sources = await eventSources(page);
    expect(sources).toHaveLength(2);
    expect(sources[0]?.readyState).toBe(CLOSED);
    expect(new URL(sources[1]!.url).searchParams.get('lastEventId')).toBe(published[2]);
    await context.close();
  });

  it('has the watchdog reopen a stream that went silent, within 2.5 heartbeats and a backoff', async () => {
    const node = await startDevNode();
    const proxy = await startStallProxy(node.url);
    const context = await newCheckedContext(browser);
    await recordEventSources(context);
    const page = await openDemo(context, proxy.url, { share: false });
    await signIn(page, 'alice');
    await waitForStatus(page, 'open', 'the stream');
    const first = await node.publishMessage('alice', 'before the stall');
    await waitForMessage(page, first, 'the first event');
    const statuses = await recordStatuses(page);

    const requestsBefore = node.eventsRequests.length;
    const stalledAt = Date.now();
    expect(proxy.stall()).toBe(1);
    await eventually(() => node.eventsRequests.length > requestsBefore, 6000, 'a new /events request from the watchdog');
    const reopenedAfterMs = Date.now() - stalledAt;

    // Silence is only noticed 2.5 heartbeats after the last ping (no error ever
    // reached the EventSource), and that ping came at most one period before the
    // stall; the fresh stream follows within a jittered backoff of 0.5-1 s.
    expect(reopenedAfterMs).toBeGreaterThanOrEqual(1.5 * HEARTBEAT_MS);
    expect(reopenedAfterMs).toBeLessThan(2.5 * HEARTBEAT_MS + 1000 + 1000);
    const request = node.eventsRequests[requestsBefore]!;
    expect(new URL(request.url, node.url).searchParams.get('lastEventId')).toBe(first);
    await waitForStatus(page, 'open', 'the reopened stream');
    expect(await statuses()).toEqual(['reconnecting', 'open']);
    const sentinel = await node.publishMessage('alice', 'after the watchdog');
    await waitForMessage(page, sentinel, 'an event on the reopened stream');
    expect(await messageIds(page)).toEqual([first, sentinel]);
    await context.close();
  });

  it('honours a 503 with Retry-After that EventSource treats as final, then resumes without loss', async () => {
    const node = await startDevNode();
    const proxy = await startStallProxy(node.url);
    const context = await newCheckedContext(browser, { expectedErrors: [STREAM_CUT, streamRefused(503)] });
    await recordEventSources(context);
    const page = await openDemo(context, proxy.url, { share: false });
    await signIn(page, 'alice');
    await waitForStatus(page, 'open', 'the stream');
    const before = await publishSome(node, 'alice', 'before', 2);
    await waitForMessageCount(page, 2, 'the first two events');
    const requestsBefore = node.eventsRequests.length;

    // The browser's own reconnect is refused (EventSource gives up: CLOSED), and so is the client's status probe.
    proxy.refuseEvents(2, 1);
    expect(node.dropStreams()).toBe(1);
    const away = await publishSome(node, 'alice', 'while refused', 3);
    await eventually(() => proxy.refused === 2, 5000, 'the reconnect and the probe to be refused');
    const refusedAt = Date.now();
    await eventually(() => node.eventsRequests.length > requestsBefore, 5000, 'the stream to be reopened');
    const waitedMs = Date.now() - refusedAt;
    expect(waitedMs).toBeGreaterThanOrEqual(950); // Retry-After: 1, spread over up to half of it again
    expect(waitedMs).toBeLessThan(1500 + 500);

    await waitForMessage(page, away.at(-1)!, 'the events published while refused');
    const live = await publishSome(node, 'alice', 'live', 1);
    await waitForMessage(page, live[0]!, 'a live event');
    expect(await messageIds(page)).toEqual([...before, ...away, ...live]);
    const sources = await eventSources(page);
    expect(sources.map((s) => s.readyState)).toEqual([CLOSED, 1]);
    expect(new URL(sources[1]!.url).searchParams.get('lastEventId')).toBe(before.at(-1));
    await context.close();
  });

  it('calls onAuthExpired on a 401 (the demo signs in again), then resumes after the last id', async () => {
    const node = await startDevNode();
    const context = await newCheckedContext(browser, { expectedErrors: [STREAM_CUT, streamRefused(401)] });
    await recordEventSources(context);
    const page = await openDemo(context, node.url, { share: false });
    await signIn(page, 'alice');
    await waitForStatus(page, 'open', 'the stream');
    const before = await publishSome(node, 'alice', 'before', 2);
    await waitForMessageCount(page, 2, 'the first two events');
    const statuses = await recordStatuses(page);
    const logins: string[] = [];
    page.on('request', (request) => {
      if (new URL(request.url()).pathname === '/dev/login') logins.push(request.method());
    });

    // The session is gone (as when the cookie expires) and the stream is cut.
    await context.clearCookies();
    expect(node.dropStreams()).toBe(1);
    const away = await publishSome(node, 'alice', 'while signed out', 3);
    await waitForMessage(page, away.at(-1)!, 'the events published while signed out', 8000);

    await waitForStatus(page, 'open', 'the resumed stream');
    expect(logins).toEqual(['POST']);
    // The browser's reconnect is refused (401), the probe reads the 401, the app renews, the stream reopens.
    expect(await statuses()).toEqual(['reconnecting', 'unauthorized', 'reconnecting', 'open']);
    expect(await node.metric('herald_refusals_total{code="token_missing"}')).toBeGreaterThanOrEqual(2); // reconnect and probe
    expect(await messageIds(page)).toEqual([...before, ...away]);
    await context.close();
  });
});
