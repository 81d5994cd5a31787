import { runScript } from '../support/run-script';

/**
 * Before the browser tests, once: Debian's Chromium (installed as root when
 * missing, a clear error otherwise), and the build, so the node serves the
 * current client bundle at /herald-client.js.
 */
export default function setup(): void {
  runScript('ensure-chromium.mjs');
  runScript('build.mjs');
}
