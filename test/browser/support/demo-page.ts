import type { BrowserContext, Page } from 'playwright-core';

/** What the demo exposes on `window` (see services/demo/demo.js), plus the EventSources the init script records. */
interface DemoWindow {
  herald?: { status: string; role: string; lastEventId?: string };
  heraldDemo?: { received: Array<{ id: string; event: string; data: { text?: string } }> };
  __sources?: EventSource[];
}

/**
 * Records every `EventSource` a page creates, before any page script runs,
 * so a test can read the real objects' `readyState` and URL.
 */
export async function recordEventSources(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    const scope = window as unknown as DemoWindow;
    const Native = window.EventSource;
    const sources: EventSource[] = [];
    scope.__sources = sources;
    window.EventSource = class extends Native {
      constructor(url: string | URL, init?: EventSourceInit) {
        super(url, init);
        sources.push(this);
      }
    };
  });
}

export interface OpenOptions {
  /** Shared-tab mode on or off (the demo keeps the choice in localStorage); unchanged when absent. */
  readonly share?: boolean;
}

export async function openDemo(context: BrowserContext, baseUrl: string, options: OpenOptions = {}): Promise<Page> {
  const page = await context.newPage();
  const query = options.share === undefined ? '' : `?share=${options.share ? 1 : 0}`;
  await page.goto(`${baseUrl}/${query}`);
  return page;
}

/** Signs in through the demo's form (POST /dev/login sets the HttpOnly cookie). */
export async function signIn(page: Page, user: string): Promise<void> {
  await page.locator('#user').fill(user);
  await page.locator('#signin-form button[type=submit]').click();
  await page.locator('#app').waitFor({ state: 'visible', timeout: 5000 });
}

/** Waits for `predicate` in the page; a timeout names `label`. */
export async function until<A extends string | number | null>(page: Page, label: string, predicate: (arg: A) => boolean, arg: A, timeoutMs = 5000): Promise<void> {
  try {
    await page.waitForFunction(predicate as (arg: unknown) => boolean, arg as unknown, { timeout: timeoutMs, polling: 20 });
  } catch (error) {
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${label}`, { cause: error });
  }
}

export function waitForStatus(page: Page, status: string, label: string, timeoutMs = 5000): Promise<void> {
  return until(page, `${label} to be ${status}`, (want) => (window as unknown as DemoWindow).herald?.status === want, status, timeoutMs);
}

/** Ids of the chat messages the page's handlers got, in order. */
export function messageIds(page: Page): Promise<string[]> {
  return page.evaluate(() => ((window as unknown as DemoWindow).heraldDemo?.received ?? []).filter((e) => e.event === 'message').map((e) => e.id));
}

/** Waits until the page got the message `id`. */
export function waitForMessage(page: Page, id: string, label: string, timeoutMs = 5000): Promise<void> {
  return until(page, label, (want) => ((window as unknown as DemoWindow).heraldDemo?.received ?? []).some((e) => e.id === want), id, timeoutMs);
}

/** Waits until the page got at least `count` messages. */
export function waitForMessageCount(page: Page, count: number, label: string, timeoutMs = 5000): Promise<void> {
  return until(
    page,
    label,
    (want) => ((window as unknown as DemoWindow).heraldDemo?.received ?? []).filter((e) => e.event === 'message').length >= want,
    count,
    timeoutMs,
  );
}

export function clientState(page: Page): Promise<{ status: string; role: string; lastEventId: string | undefined }> {
  return page.evaluate(() => {
    const herald = (window as unknown as DemoWindow).herald;
    return { status: herald?.status ?? 'none', role: herald?.role ?? 'none', lastEventId: herald?.lastEventId };
  });
}

/** readyState and URL of every EventSource the page made (0 connecting, 1 open, 2 closed). */
export function eventSources(page: Page): Promise<Array<{ readyState: number; url: string }>> {
  return page.evaluate(() => ((window as unknown as DemoWindow).__sources ?? []).map((s) => ({ readyState: s.readyState, url: s.url })));
}

/**
 * Records every status the demo shows from now on (its `#status` element's
 * `data-status`, set from the client's `onStatus`), through a MutationObserver:
 * exact, however brief a status was. Returns a reader of the list, repeats
 * collapsed.
 */
export async function recordStatuses(page: Page): Promise<() => Promise<string[]>> {
  await page.evaluate(() => {
    const element = document.getElementById('status')!;
    const records: MutationRecord[] = [];
    const observer = new MutationObserver((list) => records.push(...list));
    observer.observe(element, { attributes: true, attributeFilter: ['data-status'], attributeOldValue: true });
    (window as unknown as { __statuses: () => string[] }).__statuses = () => {
      records.push(...observer.takeRecords());
      if (records.length === 0) return [];
      // Each record holds the value before its change: the values after are the next record's old value, then the current one.
      const values = [...records.slice(1).map((r) => r.oldValue ?? ''), element.dataset.status ?? ''];
      const changes: string[] = [];
      let previous = records[0]!.oldValue;
      for (const value of values) if (value !== previous) changes.push((previous = value));
      return changes;
    };
  });
  return () => page.evaluate(() => (window as unknown as { __statuses: () => string[] }).__statuses());
}
