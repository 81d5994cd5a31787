import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createHeraldClient, type HeraldClient, type HeraldClientOptions } from './client';
import { CLOSED, CONNECTING } from './environment';
import { fakeBrowser, type FakeBrowser } from './fake-browser';

interface Events {
  message: { text: string };
  'job.progress': { percent: number };
}

function start(browser: FakeBrowser, options: HeraldClientOptions = {}): { client: HeraldClient<Events>; got: string[] } {
  const got: string[] = [];
  const client = createHeraldClient<Events>({ environment: browser.env, ...options });
  client.on('message', (data, meta) => got.push(`${meta.id}:${data.text}`));
  return { client, got };
}

describe('createHeraldClient', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('opens one EventSource at the URL resolved against the page, with the credentials mode asked for', () => {
    const browser = fakeBrowser();
    createHeraldClient({ environment: browser.env, url: '/herald/events', withCredentials: true });
    expect(browser.sources).toHaveLength(1);
    expect(browser.latest().url).toBe('https://app.example/herald/events');
    expect(browser.latest().withCredentials).toBe(true);
  });

  it('hands each event to the handlers of its name, parsed, with its id', () => {
    const browser = fakeBrowser();
    const { client, got } = start(browser);
    const progress: number[] = [];
    client.on('job.progress', (data) => progress.push(data.percent));
    const source = browser.latest();
    source.ready();
    source.emit('message', { text: 'hi' }, '01A');
    source.emit('job.progress', { percent: 40 }, '01B');
    expect(got).toEqual(['01A:hi']);
    expect(progress).toEqual([40]);
    expect(client.status).toBe('open');
    expect(client.lastEventId).toBe('01B');
  });

  it('drops an id it has already seen, so a replay never shows a notification twice', () => {
    const browser = fakeBrowser();
    const { got } = start(browser);
    const source = browser.latest();
    source.emit('message', { text: 'one' }, '01A');
    source.emit('message', { text: 'one again' }, '01A');
    source.emit('message', { text: 'two' }, '01B');
    expect(got).toEqual(['01A:one', '01B:two']);
  });

  it('stops delivering to a handler after it unsubscribes', () => {
    const browser = fakeBrowser();
    const client = createHeraldClient<Events>({ environment: browser.env });
    const got: string[] = [];
    const off = client.on('message', (data) => got.push(data.text));
    browser.latest().emit('message', { text: 'a' }, '1');
    off();
    browser.latest().emit('message', { text: 'b' }, '2');
    expect(got).toEqual(['a']);
  });

  it('keeps delivering to other handlers when one throws', async () => {
    const browser = fakeBrowser();
    const client = createHeraldClient<Events>({ environment: browser.env });
    const got: string[] = [];
    client.on('message', () => {
      throw new Error('app bug');
    });
    client.on('message', (data) => got.push(data.text));
    const uncaught = new Promise<unknown>((resolve) => process.once('uncaughtException', resolve));
    browser.latest().emit('message', { text: 'a' }, '1');
    expect(got).toEqual(['a']);
    await vi.advanceTimersByTimeAsync(0);
    expect(await uncaught).toMatchObject({ message: 'app bug' });
  });

  it('refuses to subscribe a control event name', () => {
    const browser = fakeBrowser();
    const client = createHeraldClient({ environment: browser.env });
    for (const name of ['ready', 'ping', 'gap', 'replaced', 'closing', 'open', 'error']) {
      expect(() => client.on(name, () => undefined)).toThrow(TypeError);
    }
  });

  it('leaves a stream that was cut after it opened to the browser, which reconnects with Last-Event-ID', async () => {
    const browser = fakeBrowser();
    const { client } = start(browser);
    browser.latest().ready();
    browser.latest().fail(CONNECTING);
    expect(client.status).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(browser.sources).toHaveLength(1);
    expect(browser.probes).toHaveLength(0);
    browser.latest().ready(); // the browser's own reconnect got through
    expect(client.status).toBe('open');
  });

  it('takes over when the browser fails twice in a row before ready, and resumes after the last id', async () => {
    const browser = fakeBrowser();
    start(browser);
    const first = browser.latest();
    first.ready();
    first.emit('message', { text: 'a' }, '01A');
    first.fail(CONNECTING);
    first.fail(CONNECTING); // the browser's reconnect failed too
    expect(first.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(1000);
    expect(browser.sources).toHaveLength(2);
    expect(browser.latest().position).toBe('01A');
  });

  it('takes the start position a fresh stream’s ready carries, and resumes from it before any event came', async () => {
    const browser = fakeBrowser({ random: () => 0 });
    const { client } = start(browser);
    browser.latest().ready(15_000, '01START');
    expect(client.lastEventId).toBe('01START');
    browser.answers.push(new Response('{"error":"node_full"}', { status: 503, headers: { 'Retry-After': '1' } }));
    browser.latest().fail(CLOSED);
    await vi.advanceTimersByTimeAsync(1000);
    expect(browser.sources).toHaveLength(2);
    expect(browser.latest().position).toBe('01START');
  });

  it('keeps its position when a ready carries none (a stream resumed from it)', () => {
    const browser = fakeBrowser();
    const { client } = start(browser, { lastEventId: '01KEPT' });
    browser.latest().ready();
    expect(client.lastEventId).toBe('01KEPT');
  });

  it('reopens a refused stream with ?lastEventId after a backoff, honouring Retry-After', async () => {
    const browser = fakeBrowser({ random: () => 0 });
    const { client } = start(browser);
    browser.latest().ready();
    browser.latest().emit('message', { text: 'a' }, '01A');
    browser.answers.push(new Response('{"error":"draining"}', { status: 503, headers: { 'Retry-After': '3' } }));
    browser.latest().fail(CLOSED);
    await vi.advanceTimersByTimeAsync(2999);
    expect(browser.probes).toHaveLength(1);
    expect(browser.sources).toHaveLength(1);
    expect(client.status).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(1);
    expect(browser.sources).toHaveLength(2);
    expect(browser.latest().position).toBe('01A');
  });

  it('backs off exponentially while the refusals go on, and starts over after a ready', async () => {
    const browser = fakeBrowser({ random: () => 0 });
    start(browser, { backoff: { initialMs: 1000, maxMs: 8000 } });
    const failAndWait = async (delayMs: number): Promise<void> => {
      const before = browser.sources.length;
      browser.answers.push(new TypeError('offline'));
      browser.latest().fail(CLOSED);
      await vi.advanceTimersByTimeAsync(delayMs - 1);
      expect(browser.sources).toHaveLength(before);
      await vi.advanceTimersByTimeAsync(1);
      expect(browser.sources).toHaveLength(before + 1);
    };
    for (const delayMs of [500, 1000, 2000, 4000, 4000]) await failAndWait(delayMs);
    browser.latest().ready();
    await failAndWait(500);
  });

  it('calls onAuthExpired on a 401, then resumes after the last id', async () => {
    const browser = fakeBrowser();
    const statuses: string[] = [];
    let renew!: () => void;
    const onAuthExpired = vi.fn(() => new Promise<void>((resolve) => (renew = resolve)));
    start(browser, { onAuthExpired, onStatus: (status) => statuses.push(status) });
    browser.latest().ready();
    browser.latest().emit('message', { text: 'a' }, '01A');
    browser.answers.push(new Response('{"error":"token_expired"}', { status: 401 }));
    browser.latest().fail(CLOSED);
    await vi.advanceTimersByTimeAsync(0);
    expect(onAuthExpired).toHaveBeenCalledOnce();
    expect(statuses.at(-1)).toBe('unauthorized');
    await vi.advanceTimersByTimeAsync(5000);
    expect(browser.sources).toHaveLength(1); // waits for the app to renew the cookie
    renew();
    await vi.advanceTimersByTimeAsync(0);
    expect(browser.sources).toHaveLength(2);
    expect(browser.latest().position).toBe('01A');
  });

  it('renews at once on closing: token_expired, before the browser can reconnect with the stale cookie', async () => {
    const browser = fakeBrowser();
    const onAuthExpired = vi.fn(() => Promise.resolve());
    start(browser, { onAuthExpired });
    const first = browser.latest();
    first.ready();
    first.emit('message', { text: 'a' }, '01A');
    first.emit('closing', { reason: 'token_expired' });
    expect(first.closed).toBe(true);
    expect(onAuthExpired).toHaveBeenCalledOnce();
    await vi.advanceTimersByTimeAsync(0);
    expect(browser.probes).toHaveLength(0);
    expect(browser.sources).toHaveLength(2);
    expect(browser.latest().position).toBe('01A');
  });

  it('leaves closing: draining to the browser reconnect', async () => {
    const browser = fakeBrowser();
    start(browser);
    browser.latest().ready();
    browser.latest().emit('closing', { reason: 'draining' });
    browser.latest().fail(CONNECTING);
    await vi.advanceTimersByTimeAsync(5000);
    expect(browser.sources).toHaveLength(1);
    expect(browser.latest().closed).toBe(false);
  });

  it('reopens a stream that went silent for 2.5 heartbeat periods', async () => {
    const browser = fakeBrowser({ random: () => 0 });
    const { client } = start(browser);
    const first = browser.latest();
    first.ready(1000);
    first.emit('message', { text: 'a' }, '01A');
    await vi.advanceTimersByTimeAsync(2000);
    first.emit('ping', {});
    await vi.advanceTimersByTimeAsync(2499);
    expect(first.closed).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(first.closed).toBe(true);
    expect(client.status).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(500);
    expect(browser.sources).toHaveLength(2);
    expect(browser.latest().position).toBe('01A');
  });

  it('watches a connect that never answers with the assumed heartbeat', async () => {
    const browser = fakeBrowser({ random: () => 0 });
    start(browser, { heartbeatMs: 2000 });
    await vi.advanceTimersByTimeAsync(5000);
    expect(browser.sources[0]?.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(500);
    expect(browser.sources).toHaveLength(2);
  });

  it('stops for good on replaced, and takeOver() reconnects from the last id', async () => {
    const browser = fakeBrowser();
    const onReplaced = vi.fn();
    const { client } = start(browser, { onReplaced });
    const first = browser.latest();
    first.ready(1000);
    first.emit('message', { text: 'a' }, '01A');
    first.emit('replaced', { connectionId: 'c1' }, 'replaced:c1');
    expect(first.closed).toBe(true);
    expect(onReplaced).toHaveBeenCalledOnce();
    expect(client.status).toBe('replaced');
    expect(client.lastEventId).toBe('01A');
    await vi.advanceTimersByTimeAsync(120_000); // no watchdog, no backoff, nothing
    expect(browser.sources).toHaveLength(1);
    expect(browser.probes).toHaveLength(0);
    client.takeOver();
    expect(browser.sources).toHaveLength(2);
    expect(browser.latest().position).toBe('01A');
    browser.latest().ready();
    expect(client.status).toBe('open');
  });

  it('passes gap on, so the app refetches its state', () => {
    const browser = fakeBrowser();
    const onGap = vi.fn();
    start(browser, { onGap, lastEventId: 'stale' });
    expect(browser.latest().position).toBe('stale');
    browser.latest().emit('gap', { lastEventId: 'stale', reason: 'unknown_position' });
    expect(onGap).toHaveBeenCalledWith({ lastEventId: 'stale', reason: 'unknown_position' });
  });

  it('closes for good', async () => {
    const browser = fakeBrowser();
    const { client } = start(browser);
    browser.latest().ready(1000);
    client.close();
    expect(browser.latest().closed).toBe(true);
    expect(client.status).toBe('closed');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(browser.sources).toHaveLength(1);
  });

  it('ignores events of an EventSource it already replaced by a fresh one', async () => {
    const browser = fakeBrowser({ random: () => 0 });
    const { got } = start(browser);
    const first = browser.latest();
    first.ready(1000);
    await vi.advanceTimersByTimeAsync(3000);
    expect(browser.sources).toHaveLength(2);
    first.readyState = 1; // a late event on the abandoned stream
    first.emit('message', { text: 'late' }, '01Z');
    expect(got).toEqual([]);
  });
});
