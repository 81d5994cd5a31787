import { backoffCeiling, equalJitter } from '../shared/backoff';

export interface BackoffOptions {
  /** Ceiling of the first delay. @default 1000 */
  readonly initialMs?: number;
  /** Largest ceiling, however many failures in a row. @default 30000 */
  readonly maxMs?: number;
}

/**
 * Delays between reconnect attempts: the ceiling doubles with each failure
 * since the last successful open, and the delay is drawn between half the
 * ceiling and the ceiling ("equal jitter"), so a fleet of browsers cut off at
 * the same instant does not come back in lockstep.
 */
export class Backoff {
  private attempts = 0;
  private readonly initialMs: number;
  private readonly maxMs: number;

  constructor(
    private readonly random: () => number,
    options: BackoffOptions = {},
  ) {
    this.initialMs = options.initialMs ?? 1000;
    this.maxMs = Math.max(this.initialMs, options.maxMs ?? 30_000);
  }

  /** Failures counted since the last `reset()`. */
  get failures(): number {
    return this.attempts;
  }

  next(): number {
    const ceiling = backoffCeiling(this.attempts, { firstMs: this.initialMs, maxMs: this.maxMs });
    this.attempts++;
    return equalJitter(ceiling, this.random);
  }

  reset(): void {
    this.attempts = 0;
  }
}

/**
 * `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date. Returns
 * milliseconds from `nowMs`, or undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP-date always names a day or month; `Date.parse` would also take "-1" as a year.
  const at = /[A-Za-z]/.test(text) ? Date.parse(text) : Number.NaN;
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
