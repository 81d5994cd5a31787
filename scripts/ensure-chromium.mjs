// Makes sure Debian's Chromium is installed for the browser tests (playwright-core
// drives it; `npx playwright install` cannot download its own browser here).
// As root it installs the `chromium` package with apt-get; otherwise it stops
// with a message naming the package. Plain Node, standard library only.
//
//   node scripts/ensure-chromium.mjs        exit 0 when /usr/bin/chromium is there
import { ensureDebianPackage, runAsScript } from './debian-package.mjs';

/** Where Debian's package puts the browser; the browser tests launch this path. */
export const CHROMIUM_PATH = process.env.HERALD_CHROMIUM ?? '/usr/bin/chromium';

export function ensureChromium() {
  ensureDebianPackage({ pkg: 'chromium', paths: [CHROMIUM_PATH], purpose: 'browser tests', override: 'HERALD_CHROMIUM to a Chromium binary' });
  return CHROMIUM_PATH;
}

runAsScript(import.meta.url, 'chromium', ensureChromium);
