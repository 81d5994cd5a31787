// `npm run pack`: builds the two npm packages from the sources in services/
// (built, never copied by hand) into dist/packages/*.tgz:
//
//   @herald/client     services/client/index.ts      the browser client
//   @herald/publisher  services/publisher/index.ts   createPublisher, createHttpPublisher
//
// JavaScript: one ES module per package, bundled by esbuild; a package's
// `dependencies` are exactly the packages its bundle still imports, at the
// root package.json's versions. Declarations: emitted by tsc from
// packages/tsconfig.json, then only the files an entry reaches are kept, with
// relative specifiers rewritten to end in `.js` (the sources import without
// extensions, which `moduleResolution: node16` would not resolve).
//
//   node scripts/pack.mjs        prints each tarball and its files
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { build } from 'esbuild';

const root = resolve(new URL('..', import.meta.url).pathname);
const out = join(root, 'dist', 'packages');
const rootPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

const PACKAGES = [
  {
    name: '@herald/client',
    dir: 'client',
    entry: 'services/client/index.ts',
    description: "Herald's browser client: Server-Sent Events with resume after any reconnect, duplicate suppression, a heartbeat watchdog, single-tab takeover and shared-tab mode.",
    keywords: ['herald', 'server-sent-events', 'sse', 'eventsource', 'notifications', 'browser'],
    platform: 'browser',
    target: 'es2022',
    // Nothing runs on import: a bundler may drop whatever the app does not call.
    sideEffects: false,
  },
  {
    name: '@herald/publisher',
    dir: 'publisher',
    entry: 'services/publisher/index.ts',
    description: 'Publish Herald notifications from Node: over HTTP to any Herald deployment (createHttpPublisher), or straight to the AWS shape (createPublisher).',
    keywords: ['herald', 'server-sent-events', 'sse', 'notifications', 'publisher', 'aws'],
    platform: 'node',
    target: 'node20',
    engines: rootPackage.engines,
  },
];

/** A reason the packages cannot be built; printed alone, without a stack, after the staging folder is removed. */
class PackError extends Error {}

function fail(message) {
  throw new PackError(message);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, encoding: 'utf8', ...options });
  if (result.status !== 0) fail(`${[command, ...args].join(' ')} failed (exit ${result.status ?? result.signal}):\n${result.stdout ?? ''}${result.stderr ?? ''}`);
  return result.stdout;
}

/** `@scope/name/sub` → `@scope/name`; `name/sub` → `name`. */
function packageOf(specifier) {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

const isBuiltin = (specifier) => specifier.startsWith('node:') || builtinModules.includes(specifier);

/** The root's version of a package the bundle needs at run time; exact, so the package installs what was tested. */
function rootVersionOf(name, packageName) {
  const version = rootPackage.dependencies?.[name];
  if (version === undefined) fail(`${packageName} imports ${name}, which is not in the root package.json's dependencies`);
  if (!/^\d+\.\d+\.\d+$/.test(version)) fail(`${name} is "${version}" in the root package.json; the packages pin exact versions`);
  return version;
}

const SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*)(['"])([^'"]+)\2/g;

/**
 * Copies the declarations `entry` reaches from `typesDir` into `distDir`
 * (same layout), rewriting `./x` to `./x.js` or `./x/index.js`. Returns the
 * bare packages they import, which must be dependencies of the package.
 */
function copyDeclarations(typesDir, entry, distDir) {
  const bare = new Set();
  const seen = new Set();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.shift();
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    if (/\/\/\/\s*<reference\s+(types|path|lib)=/.test(text)) fail(`${relative(typesDir, file)} has a triple-slash reference; consumers would need what it names`);
    const rewritten = text.replace(SPECIFIER, (match, lead, quote, specifier) => {
      if (!specifier.startsWith('.')) {
        if (isBuiltin(specifier)) fail(`${relative(typesDir, file)} imports ${specifier}: consumers would need @types/node for the types alone`);
        bare.add(packageOf(specifier));
        return match;
      }
      const target = resolve(dirname(file), specifier);
      let found;
      if (existsSync(`${target}.d.ts`)) found = [`${target}.d.ts`, `${specifier}.js`];
      else if (existsSync(join(target, 'index.d.ts'))) found = [join(target, 'index.d.ts'), `${specifier.replace(/\/$/, '')}/index.js`];
      else fail(`${relative(typesDir, file)} imports ${specifier}, which tsc emitted no declaration for`);
      queue.push(found[0]);
      return `${lead}${quote}${found[1]}${quote}`;
    });
    const destination = join(distDir, relative(typesDir, file));
    mkdirSync(dirname(destination), { recursive: true });
    writeFileSync(destination, rewritten);
  }
  return bare;
}

async function pack() {
  // Emptied first, so a failed run never leaves older tarballs looking fresh.
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const license = join(root, 'LICENSE');
  if (!existsSync(license)) fail(`${license} is missing: both packages ship the repository's LICENSE (Apache-2.0). Add it at the repository root, then run npm run pack again.`);

  const stage = mkdtempSync(join(tmpdir(), 'herald-pack-'));
  try {
    const typesDir = join(stage, 'types');
    run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'packages', 'tsconfig.json'), '--outDir', typesDir]);

    for (const spec of PACKAGES) {
      const dir = join(stage, spec.dir);
      const dist = join(dir, 'dist');
      mkdirSync(dist, { recursive: true });

      const bundle = await build({
        entryPoints: [join(root, spec.entry)],
        outfile: join(dist, 'index.js'),
        bundle: true,
        platform: spec.platform,
        target: spec.target,
        format: 'esm',
        // Unminified: the app's own bundler minifies, and stack traces stay readable in Node.
        minify: false,
        // Every bare import stays an import; the check below turns them into dependencies.
        packages: 'external',
        legalComments: 'inline',
        banner: { js: `// ${spec.name} ${rootPackage.version} (${rootPackage.license}), built from ${spec.entry} by scripts/pack.mjs` },
        metafile: true,
        logLevel: 'warning',
      });
      const imports = Object.values(bundle.metafile.outputs).flatMap((output) => output.imports.filter((i) => i.external).map((i) => i.path));
      if (spec.platform === 'browser' && imports.length > 0) fail(`${spec.name} must have no imports, but its bundle imports ${[...new Set(imports)].join(', ')}`);
      const runtime = [...new Set(imports.filter((i) => !isBuiltin(i)).map(packageOf))].sort();
      const dependencies = Object.fromEntries(runtime.map((name) => [name, rootVersionOf(name, spec.name)]));

      const typeImports = copyDeclarations(typesDir, join(typesDir, dirname(relative('services', spec.entry)), 'index.d.ts'), dist);
      const missing = [...typeImports].filter((name) => !(name in dependencies));
      if (missing.length > 0) fail(`${spec.name}'s declarations import ${missing.join(', ')}, which its code does not: they would not be installed`);
      const typesEntry = `./${relative('services', dirname(spec.entry))}/index.js`;
      writeFileSync(join(dist, 'index.d.ts'), `export * from '${typesEntry}';\n`);

      const manifest = {
        name: spec.name,
        version: rootPackage.version,
        description: spec.description,
        keywords: spec.keywords,
        license: rootPackage.license,
        type: 'module',
        ...(spec.sideEffects === undefined ? {} : { sideEffects: spec.sideEffects }),
        types: './dist/index.d.ts',
        exports: {
          '.': { types: './dist/index.d.ts', import: './dist/index.js', default: './dist/index.js' },
          './package.json': './package.json',
        },
        files: ['dist'],
        ...(spec.engines ? { engines: spec.engines } : {}),
        ...(runtime.length > 0 ? { dependencies } : {}),
      };
      writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
      copyFileSync(join(root, 'packages', spec.dir, 'README.md'), join(dir, 'README.md'));
      copyFileSync(license, join(dir, 'LICENSE'));

      const [packed] = JSON.parse(run('npm', ['pack', dir, '--pack-destination', out, '--json', '--silent'], { cwd: stage }));
      console.log(`[herald] ${join('dist', 'packages', packed.filename)} (${packed.size} bytes): ${spec.name}@${packed.version}`);
      for (const file of packed.files) console.log(`  ${file.path}`);
    }
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

try {
  await pack();
} catch (error) {
  if (!(error instanceof PackError)) throw error;
  console.error(`[herald] pack: ${error.message}`);
  process.exit(1);
}
