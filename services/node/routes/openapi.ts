import { readFileSync } from 'node:fs';
import type { Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import { parse } from 'yaml';

/**
 * docs/openapi.yaml, the one copy of the API description: scripts/build.mjs
 * embeds its text in the node bundle; run from the sources, the node reads it
 * from the tree.
 */
declare const __HERALD_OPENAPI_YAML__: string | undefined;

function openApiText(): string {
  if (typeof __HERALD_OPENAPI_YAML__ !== 'undefined') return __HERALD_OPENAPI_YAML__;
  return readFileSync(new URL('../../../docs/openapi.yaml', import.meta.url), 'utf8');
}

/**
 * `GET /openapi.json`: the API description as JSON, for client generators.
 * Parsed once, at start: a description that does not parse stops the node
 * there rather than at a client's first request.
 */
export function openApiRoute(app: Hono<{ Bindings: HttpBindings }>): void {
  const body = JSON.stringify(parse(openApiText()));
  app.get('/openapi.json', (c) =>
    c.body(body, 200, {
      'Content-Type': 'application/json',
      'Cache-Control': 'public, max-age=3600',
      // Public and static: a generator or an API browser on any origin may read it.
      'Access-Control-Allow-Origin': '*',
      'X-Content-Type-Options': 'nosniff',
    }),
  );
}
