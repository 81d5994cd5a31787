/**
 * The SNS→SQS bus's own message: a probe that a starting node sends to itself
 * through the topic, to confirm that the path topic → subscription → queue
 * delivers (filter policies and queue policies take effect eventually on AWS).
 * It shares the bus message's envelope (services/protocol/bus-message.ts), so
 * it travels and is read like one:
 *
 *   {"v":1,"kind":"probe","nonce":"kq3…"}
 *
 * but it is never a `BusMessage`: the bus consumes it and no handler sees it.
 * To the protocol, and so to every other bus, it is an unknown kind.
 */
import { BUS_WIRE_VERSION, parseBusObject, readBusBody, type BusAttributes, type BusMessage } from '../../protocol/bus-message';
import type { EnvelopeOptions } from '../../protocol/envelope';
import { HeraldError } from '../../protocol/errors';
import { refuseUnknownFields } from '../../protocol/notification-fields';

export interface BusProbe {
  readonly kind: 'probe';
  readonly nonce: string;
}

/** Whatever may arrive on a node queue: a message for the handler, or a probe for the bus itself. */
export type BusWireMessage = BusMessage | BusProbe;

/** A probe's nonce: random, URL-safe, short. */
export const PROBE_NONCE_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

const PROBE_KEYS: ReadonlySet<string> = new Set(['v', 'kind', 'nonce']);

export function encodeBusProbe(nonce: string): string {
  if (!PROBE_NONCE_PATTERN.test(nonce)) throw new Error('a probe nonce is 8-64 characters of A-Z a-z 0-9 _ -');
  return JSON.stringify({ v: BUS_WIRE_VERSION, kind: 'probe', nonce });
}

/**
 * What the SNS→SQS bus reads from its queue: a probe, or else whatever
 * `parseBusMessage` reads, refused alike (a HeraldError) when malformed.
 */
export function parseBusWireMessage(body: string, attributes: BusAttributes, options: EnvelopeOptions = {}): BusWireMessage {
  const input = readBusBody(body);
  if (input.v !== BUS_WIRE_VERSION || input.kind !== 'probe') return parseBusObject(input, attributes, options);
  refuseUnknownFields(input, PROBE_KEYS);
  const { nonce } = input;
  if (typeof nonce !== 'string' || !PROBE_NONCE_PATTERN.test(nonce)) {
    throw new HeraldError('envelope_invalid', 'bus message: nonce is 8-64 characters of A-Z a-z 0-9 _ -', { field: 'nonce' });
  }
  return { kind: 'probe', nonce };
}
