/**
 * What a node depends on to deliver, as `/healthz` reports it. A mode whose
 * adapters can tell when their backing service is out of reach gives one
 * (redis); without one (memory, aws) the node counts as able to deliver
 * whenever it is not draining.
 */
export interface HealthSource {
  /** Named in `/healthz` while it is unreachable: `{"status":"unavailable","reason":<name>}`. */
  readonly name: string;
  /** Whether the node can deliver through it now: reachable, and back in step after an outage. */
  reachable(): boolean;
}
