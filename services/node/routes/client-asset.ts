import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { Context, Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { HeraldError } from '../../protocol/errors';
import type { Config } from '../config';

/**
 * Files the node serves to browsers. scripts/build.mjs embeds them in the node
 * bundle (the one file `npm start` and the container run), as this constant;
 * run from the sources (tests, tsx) the node reads them from the tree instead:
 * the client bundle from dist/ (built by `npm run build`), the demo from services/demo/.
 */
declare const __HERALD_WEB_ASSETS__: Readonly<Record<string, string>> | undefined;

export type WebAssetName = 'herald-client.js' | 'index.html' | 'demo.css' | 'demo.js';

export interface WebAsset {
  readonly body: string;
  /** Strong validator of the exact bytes (RFC 9110 §8.8.3). */
  readonly etag: string;
  readonly contentType: string;
}

export type WebAssets = (name: WebAssetName) => WebAsset | undefined;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  html: 'text/html; charset=utf-8',
};

function asset(name: string, body: string): WebAsset {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  return { body, etag, contentType: CONTENT_TYPES[name.slice(name.lastIndexOf('.') + 1)] ?? 'application/octet-stream' };
}

/** Where each asset lives in the source tree, relative to the repository root. */
const SOURCE_PATHS: Readonly<Record<WebAssetName, string>> = {
  'herald-client.js': 'dist/herald-client.js',
  'index.html': 'services/demo/index.html',
  'demo.css': 'services/demo/demo.css',
  'demo.js': 'services/demo/demo.js',
};

export function webAssets(): WebAssets {
  if (typeof __HERALD_WEB_ASSETS__ !== 'undefined') {
    const embedded = new Map(Object.entries(__HERALD_WEB_ASSETS__).map(([name, body]) => [name, asset(name, body)]));
    return (name) => embedded.get(name);
  }
  // From the sources: read at each request, so an edit shows on reload.
  const root = new URL('../../../', import.meta.url);
  return (name) => {
    const file = new URL(SOURCE_PATHS[name], root);
    return existsSync(file) ? asset(name, readFileSync(file, 'utf8')) : undefined;
  };
}

/** Answers with an asset, or `304` when the browser's copy (`If-None-Match`) is current. */
export function sendAsset(c: Context<{ Bindings: HttpBindings }>, found: WebAsset, headers: Readonly<Record<string, string>>): Response {
  const common = { ETag: found.etag, 'X-Content-Type-Options': 'nosniff', ...headers };
  const known = c.req.header('if-none-match');
  if (known !== undefined && known.split(',').some((tag) => tag.trim() === found.etag || tag.trim() === '*')) {
    return c.body(null, 304, common);
  }
  return c.body(found.body, 200, { 'Content-Type': found.contentType, ...common });
}

/**
 * `GET /herald-client.js`, in every mode: the browser client as one minified
 * ES module. Cached for a day and revalidated by ETag (always revalidated in
 * dev mode, where it changes with each build). Public code, so any origin may
 * load it: module scripts are fetched with CORS.
 */
export function clientAssetRoute(app: Hono<{ Bindings: HttpBindings }>, config: Config, assets: WebAssets): void {
  app.get('/herald-client.js', (c) => {
    const found = assets('herald-client.js');
    if (!found) throw new HeraldError('not_found', 'the client bundle is not built; run `npm run build`');
    return sendAsset(c, found, {
      'Cache-Control': config.dev ? 'no-cache' : 'public, max-age=86400',
      'Access-Control-Allow-Origin': '*',
    });
  });
}
