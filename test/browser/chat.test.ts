import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchChromium, newCheckedContext } from './support/chromium';
import { startDevNode } from './support/dev-node';
import { messageIds, openDemo, recordEventSources, signIn, until, waitForStatus } from './support/demo-page';

describe('demo page in Chromium: chat', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser.close();
  });

  it('shows a message sent from one user’s page on the other user’s page in under a second', async () => {
    const node = await startDevNode();
    // Two users: two contexts, each with its own cookie jar.
    const aliceContext = await newCheckedContext(browser);
    const bobContext = await newCheckedContext(browser);
    await Promise.all([recordEventSources(aliceContext), recordEventSources(bobContext)]);
    const alice = await openDemo(aliceContext, node.url, { share: false });
    const bob = await openDemo(bobContext, node.url, { share: false });
    await signIn(alice, 'alice');
    await signIn(bob, 'bob');
    await Promise.all([waitForStatus(alice, 'open', 'alice’s stream'), waitForStatus(bob, 'open', 'bob’s stream')]);

    await alice.locator('#to').fill('bob');
    await alice.locator('#text').fill('Lunch at noon?');
    const sentAt = Date.now();
    await alice.locator('#send-form button[type=submit]').click();
    await until(bob, 'the message on bob’s page', () => document.querySelector('#feed .item.message p')?.textContent === 'Lunch at noon?', null, 2000);
    const elapsedMs = Date.now() - sentAt;

    expect(elapsedMs).toBeLessThan(1000);
    await expect(bob.locator('#unread').textContent()).resolves.toBe('1');
    await expect(bob.locator('#feed .item.message strong').first().textContent()).resolves.toBe('alice');
    // The publish answer's presence, shown to the sender.
    await until(alice, 'the send result', () => document.getElementById('send-result')?.textContent === 'Delivered to bob.', null, 2000);
    expect(await messageIds(alice)).toEqual([]);
    await Promise.all([aliceContext.close(), bobContext.close()]);
  });

  it('streams a job’s progress to the page that started it', async () => {
    const node = await startDevNode();
    const context = await newCheckedContext(browser);
    const page = await openDemo(context, node.url, { share: false });
    await signIn(page, 'carol');
    await waitForStatus(page, 'open', 'carol’s stream');
    await page.locator('#start-job').click();
    await until(page, 'the job to finish', () => document.querySelector('.job .job-pct')?.textContent === 'done', null, 10_000);
    const percents = await page.evaluate(() =>
      (window as unknown as { heraldDemo: { received: Array<{ event: string; data: { percent: number } }> } }).heraldDemo.received
        .filter((e) => e.event === 'job.progress')
        .map((e) => e.data.percent),
    );
    expect(percents).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    await expect(page.locator('#feed .item.job').count()).resolves.toBe(1);
    await context.close();
  });
});
