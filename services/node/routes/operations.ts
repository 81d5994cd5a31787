import type { Hono } from 'hono';
import type { HttpBindings } from '@hono/node-server';
import type { HealthSource } from '../health';
import type { HeraldNode } from '../herald-node';

/** `GET /healthz` for the load balancer, `GET /metrics` for Prometheus. */
export function operationsRoutes(app: Hono<{ Bindings: HttpBindings }>, node: HeraldNode, health: HealthSource | undefined): void {
  app.get('/healthz', (c) => {
    // 503 while draining takes the node out of the target group before its streams close.
    if (node.draining) return c.json({ status: 'draining', nodeId: node.nodeId }, 503);
    // Out of the target group too while it cannot deliver: new streams would only be refused or go quiet.
    if (health !== undefined && !health.reachable()) return c.json({ status: 'unavailable', reason: health.name, nodeId: node.nodeId }, 503);
    return c.json({ status: 'ok', nodeId: node.nodeId, connections: node.hub.size });
  });

  app.get('/metrics', (c) => {
    const text = node.metrics.render({ connections: node.hub.size, users: node.hub.users, draining: node.draining });
    return c.text(text, 200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' });
  });
}
