// Bundles the browser client and the node's entry point. The node bundle is
// one ESM file, what `npm start` runs and what the container image runs; the
// client bundle (dist/herald-client.js) and the demo page are embedded in it,
// so that one file also serves /herald-client.js and, in dev mode, the demo.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;

// The client: one minified ES module for browsers, no dependencies.
const client = await build({
  entryPoints: [`${root}services/client/index.ts`],
  bundle: true,
  platform: 'browser',
  target: 'es2022',
  format: 'esm',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
  write: false,
});
const clientCode = client.outputFiles[0].text;
// Written by rename, so a node serving dist/ from the sources never reads half a file.
const clientFile = `${root}dist/herald-client.js`;
mkdirSync(`${root}dist`, { recursive: true });
writeFileSync(`${clientFile}.${process.pid}.tmp`, clientCode);
renameSync(`${clientFile}.${process.pid}.tmp`, clientFile);

const webAssets = {
  'herald-client.js': clientCode,
  'index.html': readFileSync(`${root}services/demo/index.html`, 'utf8'),
  'demo.css': readFileSync(`${root}services/demo/demo.css`, 'utf8'),
  'demo.js': readFileSync(`${root}services/demo/demo.js`, 'utf8'),
};

await build({
  entryPoints: { 'herald-node': `${root}services/node/main.ts` },
  outdir: `${root}dist`,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
  // Read by services/node/routes/client-asset.ts; absent when the node runs from the sources.
  define: { __HERALD_WEB_ASSETS__: JSON.stringify(webAssets) },
  // Some dependencies are CommonJS and call require(): give the ESM bundle one.
  banner: { js: "import { createRequire as __heraldCreateRequire } from 'node:module'; const require = __heraldCreateRequire(import.meta.url);" },
});
