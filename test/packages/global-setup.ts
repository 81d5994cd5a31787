import { runScript } from '../support/run-script';

/**
 * Before the package tests, once: the tarballs as `npm run pack` builds them
 * (dist/packages/*.tgz, from the current sources), and Debian's Chromium for
 * the test that loads @herald/client in a real browser.
 */
export default function setup(): void {
  runScript('ensure-chromium.mjs');
  runScript('pack.mjs');
}
