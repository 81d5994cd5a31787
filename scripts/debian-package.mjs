// Installs a Debian package that some tests need (Chromium, redis-server) when
// the files they run are missing: as root with apt-get, otherwise it stops
// with a message naming the package. Plain Node, standard library only: it
// runs before anything is installed.
import { existsSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

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

/**
 * Makes sure every path in `paths` exists, installing `pkg` when one is
 * missing. `purpose` names the tests that need it; `override` the variable
 * that points the tests at another binary.
 */
export function ensureDebianPackage({ pkg, paths, purpose, override }) {
  const installed = () => paths.every((path) => existsSync(path));
  if (installed()) return;
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root) {
    throw new Error(
      `${paths.join(' or ')} is missing. The ${purpose} use Debian's \`${pkg}\` package: ` +
        `install it with \`sudo apt-get install -y ${pkg}\` (or set ${override}), then run the tests again.`,
    );
  }
  console.error(`[herald] installing Debian's ${pkg} package for the ${purpose}…`);
  if (!packageListsPresent() && apt(['update']) !== 0) throw new Error('apt-get update failed');
  let status = apt(['install', '-y', pkg]);
  // Stale lists name package versions the mirror no longer has: refresh once and retry.
  if (status !== 0 && apt(['update']) === 0) status = apt(['install', '-y', pkg]);
  if (status !== 0) throw new Error(`apt-get install -y ${pkg} failed (exit ${status}); install Debian's \`${pkg}\` package by hand`);
  if (!installed()) throw new Error(`${pkg} is installed, but ${paths.join(' or ')} is still missing`);
}

/** Runs `ensure` when `moduleUrl` is the script node was started with: exit 1 with the message on failure. */
export function runAsScript(moduleUrl, label, ensure) {
  if (moduleUrl !== `file://${process.argv[1]}`) return;
  try {
    console.error(`[herald] ${label}: ${ensure()}`);
  } catch (error) {
    console.error(`[herald] ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
}
