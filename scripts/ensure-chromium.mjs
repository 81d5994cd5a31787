// Makes sure Debian's Chromium is installed for the browser tests (playwright-core
// drives it; `npx playwright install` cannot download its own browser here).
// As root it installs the `chromium` package with apt-get; otherwise it stops
// with a message naming the package. Plain Node, standard library only.
//
//   node scripts/ensure-chromium.mjs        exit 0 when /usr/bin/chromium is there
import { existsSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/** Where Debian's package puts the browser; the browser tests launch this path. */
export const CHROMIUM_PATH = process.env.HERALD_CHROMIUM ?? '/usr/bin/chromium';

const apt = (args) => {
  console.error(`[herald] apt-get ${args.join(' ')}`);
  return spawnSync('apt-get', args, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  }).status;
};

/** apt-get install fails on a machine whose package lists were never fetched (or were cleaned). */
function packageListsPresent() {
  try {
    return readdirSync('/var/lib/apt/lists').some((name) => name.endsWith('_Packages') || name.endsWith('_Packages.lz4'));
  } catch {
    return false;
  }
}

export function ensureChromium() {
  if (existsSync(CHROMIUM_PATH)) return CHROMIUM_PATH;
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root) {
    throw new Error(
      `Chromium is missing (${CHROMIUM_PATH}). The browser tests use Debian's \`chromium\` package: ` +
        'install it with `sudo apt-get install -y chromium` (or set HERALD_CHROMIUM to a Chromium binary), then run the tests again.',
    );
  }
  console.error("[herald] installing Debian's chromium package for the browser tests…");
  if (!packageListsPresent() && apt(['update']) !== 0) throw new Error('apt-get update failed');
  let status = apt(['install', '-y', 'chromium']);
  // Stale lists name package versions the mirror no longer has: refresh once and retry.
  if (status !== 0 && apt(['update']) === 0) status = apt(['install', '-y', 'chromium']);
  if (status !== 0 || !existsSync(CHROMIUM_PATH)) {
    throw new Error(`apt-get install -y chromium failed (exit ${status}); install Debian's \`chromium\` package by hand`);
  }
  return CHROMIUM_PATH;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    console.error(`[herald] chromium: ${ensureChromium()}`);
  } catch (error) {
    console.error(`[herald] ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
}
