import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createHeraldClient, type HeraldClient } from './client';
import { FakeChannels, FakeLocks, fakeBrowser, type FakeBrowser } from './fake-browser';

interface Tab {
  readonly browser: FakeBrowser;
  readonly client: HeraldClient;
  readonly got: string[];
  readonly replaced: ReturnType<typeof vi.fn>;
}

/** Tabs of one origin: one lock manager, one set of channels, each its own EventSources. */
function origin(): { open: (options?: { share?: boolean }) => Tab; locks: FakeLocks; channels: FakeChannels } {
  const locks = new FakeLocks();
  const channels = new FakeChannels();
  return {
    locks,
    channels,
    open(options = {}) {
      const browser = fakeBrowser({ locks, channels });
      const replaced = vi.fn();
      const client = createHeraldClient({ environment: browser.env, share: options.share ?? true, onReplaced: replaced });
      const got: string[] = [];
      client.on('message', (data, meta) => got.push(`${meta.id}:${(data as { text: string }).text}`));
      return { browser, client, got, replaced };
    },
  };
}

const settle = async (): Promise<void> => {
  await vi.advanceTimersByTimeAsync(0);
};

describe('shared-tab mode', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('holds one EventSource for all tabs: the leader', async () => {
    const site = origin();
    const tabs = [site.open(), site.open(), site.open()];
    await settle();
    expect(tabs.map((t) => t.client.role)).toEqual(['leader', 'follower', 'follower']);
    expect(tabs.map((t) => t.browser.sources.length)).toEqual([1, 0, 0]);
  });

  it('gives every tab each event once, and the followers mirror the stream status', async () => {
    const site = origin();
    const tabs = [site.open(), site.open(), site.open()];
    await settle();
    const stream = tabs[0]!.browser.latest();
    stream.ready();
    stream.emit('message', { text: 'a' }, '01A');
    stream.emit('message', { text: 'a' }, '01A');
    stream.emit('message', { text: 'b' }, '01B');
    await settle();
    for (const tab of tabs) {
      expect(tab.got).toEqual(['01A:a', '01B:b']);
      expect(tab.client.status).toBe('open');
      expect(tab.client.lastEventId).toBe('01B');
    }
  });

  it('subscribes on the leader the names a follower listens to', async () => {
    const site = origin();
    const leader = site.open();
    const follower = site.open();
    const progress: unknown[] = [];
    follower.client.on('job.progress', (data) => progress.push(data));
    await settle();
    leader.browser.latest().emit('job.progress', { percent: 10 }, '01A');
    await settle();
    expect(progress).toEqual([{ percent: 10 }]);
  });

  it('hands the stream to the next tab when the leader leaves, resuming after the last id without repeats', async () => {
    const site = origin();
    const tabs = [site.open(), site.open(), site.open()];
    await settle();
    const first = tabs[0]!.browser.latest();
    first.ready();
    first.emit('message', { text: 'a' }, '01A');
    await settle();
    tabs[0]!.client.close();
    await settle();
    expect(first.closed).toBe(true);
    expect(tabs[1]!.client.role).toBe('leader');
    expect(tabs[2]!.client.role).toBe('follower');
    const next = tabs[1]!.browser.latest();
    expect(next.position).toBe('01A');
    next.ready();
    next.emit('message', { text: 'a' }, '01A'); // replay overlap
    next.emit('message', { text: 'b' }, '01B');
    await settle();
    expect(tabs[1]!.got).toEqual(['01A:a', '01B:b']);
    expect(tabs[2]!.got).toEqual(['01A:a', '01B:b']);
  });

  it('hands over from the stream’s start position when no event came, to a tab that joined after it was given', async () => {
    const site = origin();
    const leader = site.open();
    await settle();
    leader.browser.latest().ready(15_000, '01START');
    await settle();
    const late = site.open(); // joins after the position was posted: the leader answers its hello with it
    await settle();
    expect(late.client.lastEventId).toBe('01START');
    leader.client.close();
    await settle();
    expect(late.client.role).toBe('leader');
    expect(late.browser.latest().position).toBe('01START');
  });

  it('tells every tab it was replaced, and "Use here" in a follower makes the leader take over', async () => {
    const site = origin();
    const [leader, follower] = [site.open(), site.open()];
    await settle();
    leader.browser.latest().ready();
    leader.browser.latest().emit('replaced', { connectionId: 'c1' }, 'replaced:c1');
    await settle();
    expect(leader.replaced).toHaveBeenCalledOnce();
    expect(follower.replaced).toHaveBeenCalledOnce();
    expect(follower.client.status).toBe('replaced');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(leader.browser.sources).toHaveLength(1);

    follower.client.takeOver();
    await settle();
    expect(leader.browser.sources).toHaveLength(2);
    expect(follower.browser.sources).toHaveLength(0);
    leader.browser.latest().ready();
    await settle();
    expect(follower.client.status).toBe('open');
  });

  it('keeps a displaced group displaced when its leader tab closes', async () => {
    const site = origin();
    const [leader, follower] = [site.open(), site.open()];
    await settle();
    leader.browser.latest().emit('replaced', { connectionId: 'c1' }, 'replaced:c1');
    await settle();
    leader.client.close();
    await settle();
    expect(follower.client.role).toBe('leader');
    expect(follower.browser.sources).toHaveLength(0);
    follower.client.takeOver();
    expect(follower.browser.sources).toHaveLength(1);
  });

  it('shows a tab that joins a displaced group that it was replaced', async () => {
    const site = origin();
    const leader = site.open();
    await settle();
    leader.browser.latest().emit('replaced', { connectionId: 'c1' }, 'replaced:c1');
    const late = site.open();
    await settle();
    expect(late.client.status).toBe('replaced');
    expect(late.replaced).toHaveBeenCalledOnce();
    expect(leader.browser.sources).toHaveLength(1);
  });

  it('tells a late tab the current status', async () => {
    const site = origin();
    const leader = site.open();
    await settle();
    leader.browser.latest().ready();
    const late = site.open();
    await settle();
    expect(late.client.status).toBe('open');
  });

  it('falls back to a stream per tab without Web Locks (an insecure context)', async () => {
    const browser = fakeBrowser({ channels: new FakeChannels() });
    const client = createHeraldClient({ environment: browser.env, share: true });
    await settle();
    expect(client.role).toBe('solo');
    expect(browser.sources).toHaveLength(1);
  });

  it('gives up its place in the queue when a follower closes', async () => {
    const site = origin();
    const [leader, quitter, stayer] = [site.open(), site.open(), site.open()];
    await settle();
    quitter.client.close();
    leader.client.close();
    await settle();
    expect(quitter.browser.sources).toHaveLength(0);
    expect(stayer.client.role).toBe('leader');
    expect(stayer.browser.sources).toHaveLength(1);
  });
});
