/**
 * Bundles node-under-test and the load client with esbuild, as scripts/build.mjs
 * bundles the node: the child processes run plain `node` on one file each, so
 * neither tsx's transpiler nor its memory is part of what is measured.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';

const here = new URL('.', import.meta.url).pathname;

export interface Bundles {
  readonly dir: string;
  remove(): void;
}

export async function buildBundles(): Promise<Bundles> {
  const dir = mkdtempSync(join(tmpdir(), 'herald-bench-'));
  await build({
    entryPoints: { 'node-under-test': join(here, 'node-under-test.ts'), 'load-client': join(here, 'load-client.ts') },
    outdir: dir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    logLevel: 'warning',
    // As scripts/build.mjs embeds it: the bundle runs from a temporary directory, away from docs/.
    define: { __HERALD_OPENAPI_YAML__: JSON.stringify(readFileSync(join(here, '../../docs/openapi.yaml'), 'utf8')) },
    // Some dependencies are CommonJS and call require(): give the ESM bundle one.
    banner: { js: "import { createRequire as __benchCreateRequire } from 'node:module'; const require = __benchCreateRequire(import.meta.url);" },
  });
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
