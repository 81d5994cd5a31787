/**
 * Herald's browser client: `createHeraldClient()` over the browser's
 * `EventSource`, with duplicate suppression, resume after any reconnect, a
 * heartbeat watchdog, backoff on refusals, the single-tab takeover and an
 * optional stream shared by all of an origin's tabs. No runtime dependencies;
 * `npm run build` bundles it to dist/herald-client.js, which the node serves
 * at /herald-client.js.
 */
export { createHeraldClient } from './client';
export type { EventHandler, EventMap, EventMeta, HeraldClient, HeraldClientOptions, TabRole } from './client';
export type { ConnectionStatus, GapInfo } from './stream-driver';
export type { BackoffOptions } from './backoff';
export type { ClientEnvironment } from './environment';
