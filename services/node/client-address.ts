import type { IncomingMessage } from 'node:http';

/**
 * The address a connection limit applies to. Behind the ALB every socket comes
 * from the balancer, so the client is the last `X-Forwarded-For` hop, the one
 * the ALB appended; earlier hops are whatever the client chose to send.
 */
export function clientAddress(incoming: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = incoming.headers['x-forwarded-for'];
    const header = Array.isArray(forwarded) ? forwarded.join(',') : forwarded;
    const last = header?.split(',').pop()?.trim();
    if (last) return last;
  }
  return incoming.socket.remoteAddress ?? 'unknown';
}
