// Makes sure Debian's nginx and its Nchan module are installed for
// `npm run bench -- --compare nchan`, which starts its own nginx (a config in a
// temp dir, on a free port on 127.0.0.1) beside the node under test. As root it
// installs the `nginx` and `libnginx-mod-nchan` packages with apt-get;
// otherwise it stops with a message naming both. Plain Node, standard library
// only.
//
//   node scripts/ensure-nchan.mjs        exit 0 when the nginx binary and the module are there
//
// On a machine with an init system, installing `nginx` also starts Debian's
// default nginx service (port 80); the bench does not use or stop it.
import { existsSync } from 'node:fs';
import { ensureDebianPackage, runAsScript } from './debian-package.mjs';

/** Where Debian's packages put them (`dpkg -L nginx libnginx-mod-nchan`); the bench runs these paths. */
export const NGINX_PATH = process.env.HERALD_NGINX ?? '/usr/sbin/nginx';
export const NCHAN_MODULE_PATH = process.env.HERALD_NCHAN_MODULE ?? '/usr/lib/nginx/modules/ngx_nchan_module.so';

const PACKAGES = ['nginx', 'libnginx-mod-nchan'];
const OVERRIDE = 'HERALD_NGINX and HERALD_NCHAN_MODULE to the nginx binary and ngx_nchan_module.so';

/** Returns the two paths once both exist; installs what is missing as root, or throws naming the packages. */
export function ensureNchan() {
  const paths = [NGINX_PATH, NCHAN_MODULE_PATH];
  if (paths.every((path) => existsSync(path))) return { nginx: NGINX_PATH, module: NCHAN_MODULE_PATH };
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root) {
    const missing = paths.filter((path) => !existsSync(path));
    throw new Error(
      `${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} missing. \`npm run bench -- --compare nchan\` uses Debian's ` +
        `${PACKAGES.map((p) => `\`${p}\``).join(' and ')} packages: install them with \`sudo apt-get install -y ${PACKAGES.join(' ')}\` ` +
        `(or set ${OVERRIDE}), then run the bench again.`,
    );
  }
  // The module's package depends on the nginx ABI, which the `nginx` package provides: nginx first.
  ensureDebianPackage({ pkg: 'nginx', paths: [NGINX_PATH], purpose: 'Nchan comparison of the bench', override: OVERRIDE });
  ensureDebianPackage({ pkg: 'libnginx-mod-nchan', paths: [NCHAN_MODULE_PATH], purpose: 'Nchan comparison of the bench', override: OVERRIDE });
  return { nginx: NGINX_PATH, module: NCHAN_MODULE_PATH };
}

runAsScript(import.meta.url, 'nginx + Nchan', () => {
  const { nginx, module } = ensureNchan();
  return `${nginx}, ${module}`;
});
