import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, onTestFinished } from 'vitest';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';

/** Debian's package; test/browser/global-setup.ts installs it when missing. */
export const CHROMIUM_PATH = process.env.HERALD_CHROMIUM ?? '/usr/bin/chromium';

/**
 * The flags this machine needs: without the background-networking ones
 * Chromium keeps dialling Google's hosts, which the closed network refuses.
 * Playwright's `launch()` makes a fresh, temporary user-data dir itself (it
 * refuses `--user-data-dir` in `args`).
 */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_FLAGS, headless: true });
}

/** Where screenshots go: test-output/ is gitignored. */
export function outputPath(name: string): string {
  const dir = join(new URL('../../../', import.meta.url).pathname, 'test-output', 'browser');
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}

/**
 * An error a test provokes on purpose: a console error is expected when its
 * text and the URL it names both match. It must then be seen, so an
 * allowance cannot outlive the behaviour it was written for.
 */
export interface ExpectedError {
  readonly text: RegExp;
  readonly url: RegExp;
}

export interface CheckedContextOptions extends BrowserContextOptions {
  /** The errors this test provokes on purpose (a refused reconnect, a 401); every other one fails it. */
  readonly expectedErrors?: readonly ExpectedError[];
}

/**
 * A browser context whose pages must raise no error: an uncaught exception,
 * or a console message of type `error`, which is also how Chromium reports a
 * request answered 4xx or 5xx or refused ("Failed to load resource: ...").
 * When the test finishes the context is closed, then the errors checked:
 * closing first delivers every message the pages logged, and it happens
 * before the node the test started earlier stops (onTestFinished runs in
 * reverse order), so a stopping node never shows up as an error.
 */
export async function newCheckedContext(browser: Browser, options: CheckedContextOptions = {}): Promise<BrowserContext> {
  const { expectedErrors = [], ...contextOptions } = options;
  const context = await browser.newContext(contextOptions);
  const errors: string[] = [];
  const seen = new Set<ExpectedError>();
  const watch = (page: Page): void => {
    page.on('pageerror', (error) => errors.push(`uncaught on ${page.url()}: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const url = message.location().url;
      const expected = expectedErrors.find((e) => e.text.test(message.text()) && e.url.test(url));
      if (expected) seen.add(expected);
      else errors.push(`console on ${page.url()}: ${message.text()} (at ${url})`);
    });
  };
  context.on('page', watch);
  onTestFinished(async () => {
    await context.close();
    expect(errors, 'errors the pages raised or logged').toEqual([]);
    expect(expectedErrors.filter((e) => !seen.has(e)), 'expected errors that never came').toEqual([]);
  });
  return context;
}
