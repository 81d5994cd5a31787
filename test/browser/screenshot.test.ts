import { existsSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchChromium, newCheckedContext, outputPath } from './support/chromium';
import { startDevNode } from './support/dev-node';
import { openDemo, signIn, until, waitForMessageCount, waitForStatus } from './support/demo-page';

describe('demo page in Chromium: screenshot', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser.close();
  });

  it('writes a screenshot of the demo after a few notifications to test-output/browser/', async () => {
    const node = await startDevNode();
    const context = await newCheckedContext(browser, { viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1 });
    const page = await openDemo(context, node.url, { share: false });
    await signIn(page, 'alice');
    await waitForStatus(page, 'open', 'alice’s stream');

    await page.locator('#start-job').click();
    const bobContext = await newCheckedContext(browser);
    const bob = await openDemo(bobContext, node.url, { share: false });
    await signIn(bob, 'bob');
    for (const text of ['Are we still on for the 3 pm review?', 'I pushed the fix for the login bug.']) {
      await bob.locator('#to').fill('alice');
      await bob.locator('#text').fill(text);
      await bob.locator('#send-form button[type=submit]').click();
      await until(bob, 'the send result', (t) => document.getElementById('send-result')?.textContent === t, 'Delivered to alice.');
      await bob.evaluate(() => (document.getElementById('send-result')!.textContent = ''));
    }
    await node.publishMessage('alice', 'Your weekly summary is ready.');
    await waitForMessageCount(page, 3, 'three messages on alice’s page');
    await until(page, 'the job to finish', () => document.querySelector('.job .job-pct')?.textContent === 'done', null, 10_000);
    await page.locator('#to').fill('bob');
    await page.locator('#text').fill('Yes, see you at 3!');
    await page.locator('#send-form button[type=submit]').click();
    await until(page, 'the send result', () => document.getElementById('send-result')?.textContent === 'Delivered to bob.', null);

    const file = outputPath('demo.png');
    await page.screenshot({ path: file, fullPage: true });
    expect(existsSync(file)).toBe(true);
    expect(statSync(file).size).toBeGreaterThan(10_000);
    await Promise.all([context.close(), bobContext.close()]);
  });
});
