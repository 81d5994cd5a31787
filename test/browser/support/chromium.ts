import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

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

/** Uncaught errors of every page of a context, so a test can assert the demo raised none. */
export function collectPageErrors(context: BrowserContext): string[] {
  const errors: string[] = [];
  const watch = (page: Page): void => {
    page.on('pageerror', (error) => errors.push(`${page.url()}: ${error.message}`));
  };
  context.pages().forEach(watch);
  context.on('page', watch);
  return errors;
}
