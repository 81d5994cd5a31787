// Bundles the browser client and the node's entry point. The node bundle is
// one ESM file, what `npm start` runs and what the container image runs; the
// client bundle (dist/herald-client.js) and the demo page are embedded in it,
// so that one file also serves /herald-client.js and, in dev mode, the demo.
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
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
/**
 * Every file goes to dist/ by rename, never written in place: a node started
 * from dist/ (`npm start`, the tests) never reads half a file, and two builds
 * at once (two `npm start` in one checkout) each leave whole files, the last
 * rename winning.
 */
function writeAtomically(file, contents) {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, contents);
  renameSync(temporary, file);
}

const clientFile = `${root}dist/herald-client.js`;
mkdirSync(`${root}dist`, { recursive: true });
writeAtomically(clientFile, clientCode);

const webAssets = {
  'herald-client.js': clientCode,
  'index.html': readFileSync(`${root}services/demo/index.html`, 'utf8'),
  'demo.css': readFileSync(`${root}services/demo/demo.css`, 'utf8'),
  'demo.js': readFileSync(`${root}services/demo/demo.js`, 'utf8'),
};

const node = await build({
  entryPoints: { 'herald-node': `${root}services/node/main.ts` },
  outdir: `${root}dist`,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: true,
  // The notices found in the sources go to herald-node.mjs.LEGAL.txt, which the bundle's last line names.
  legalComments: 'linked',
  metafile: true,
  // Kept in memory and written below, each file by rename.
  write: false,
  logLevel: 'warning',
  // Read by services/node/routes/client-asset.ts and routes/openapi.ts; absent when the node runs from the sources.
  define: {
    __HERALD_WEB_ASSETS__: JSON.stringify(webAssets),
    __HERALD_OPENAPI_YAML__: JSON.stringify(readFileSync(`${root}docs/openapi.yaml`, 'utf8')),
  },
  // Some dependencies are CommonJS and call require(): give the ESM bundle one.
  banner: { js: "import { createRequire as __heraldCreateRequire } from 'node:module'; const require = __heraldCreateRequire(import.meta.url);" },
});

// Few packages carry their licence as a source comment (esbuild found only
// bowser's), so the licence files of every package bundled into the node are
// added to herald-node.mjs.LEGAL.txt, which the image ships beside the bundle.
// Identical texts (the AWS SDK's Apache-2.0, many times) are written once.
const packageDirs = new Set();
for (const output of Object.values(node.metafile.outputs)) {
  for (const input of Object.keys(output.inputs)) {
    // Metafile paths are relative to esbuild's working directory; the last node_modules/ is the package's own.
    const match = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (match) packageDirs.add(resolve(match[1]));
  }
}
const packagesByText = new Map();
for (const dir of packageDirs) {
  const { name, version, license } = JSON.parse(readFileSync(`${dir}/package.json`, 'utf8'));
  const files = readdirSync(dir).filter((file) => /^(licen[cs]e|notice|copying)/i.test(file)).sort();
  const text = files.length > 0 ? files.map((file) => readFileSync(`${dir}/${file}`, 'utf8').trim()).join('\n\n') : '(these packages ship no licence file: each declares the licence named above, whose text is given with other packages)';
  packagesByText.set(text, [...(packagesByText.get(text) ?? []), `${name}@${version} (${license ?? 'no licence declared'})`]);
}
const byName = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const licences = [...packagesByText]
  .map(([text, packages]) => `${packages.sort(byName).join('\n')}:\n\n${text}`)
  .sort(byName)
  .join(`\n\n${'-'.repeat(72)}\n\n`);
const legalFile = resolve(`${root}dist/herald-node.mjs.LEGAL.txt`);
// The notices this build found, from memory: what is on disk may be another build's, licences included.
const legalOutput = node.outputFiles.find((output) => resolve(output.path) === legalFile);
const comments = legalOutput ? legalOutput.text.trimEnd() : 'Bundled license information: no notices in the sources.';
writeAtomically(legalFile, `${comments}\n\nLicences of the packages bundled into herald-node.mjs:\n\n${licences}\n`);
// The bundle last: it names the source map and the licences, which are then in place.
const bundleLast = (a, b) => Number(a.path.endsWith('.mjs')) - Number(b.path.endsWith('.mjs'));
for (const output of node.outputFiles.filter((o) => resolve(o.path) !== legalFile).sort(bundleLast)) writeAtomically(output.path, output.contents);
