/**
 * Latency statistics shared by the client processes and the parent. Each client
 * keeps one histogram per tag and the parent adds them up, so percentiles over
 * all clients are exact to the bucket width without shipping every sample.
 */

/** 1 µs buckets below 1 ms, then 200 per decade (about 1.2 % wide) up to 100 s. */
const LINEAR_US = 1000;
const PER_DECADE = 200;
const DECADES = 5;
const SIZE = LINEAR_US + PER_DECADE * DECADES + 1;

export interface HistogramData {
  readonly counts: Uint32Array;
  readonly count: number;
  readonly maxUs: number;
  readonly sumUs: number;
}

function bucketOf(us: number): number {
  if (us < LINEAR_US) return us <= 0 ? 0 : Math.floor(us);
  return Math.min(SIZE - 1, LINEAR_US + Math.floor(Math.log10(us / LINEAR_US) * PER_DECADE));
}

/** The upper edge of a bucket: a percentile is reported as "at most this". */
function upperEdgeUs(bucket: number): number {
  if (bucket < LINEAR_US) return bucket + 1;
  return LINEAR_US * 10 ** ((bucket + 1 - LINEAR_US) / PER_DECADE);
}

export class LatencyHistogram implements HistogramData {
  readonly counts = new Uint32Array(SIZE);
  count = 0;
  maxUs = 0;
  sumUs = 0;

  record(us: number): void {
    this.counts[bucketOf(us)]!++;
    this.count++;
    this.sumUs += us;
    if (us > this.maxUs) this.maxUs = us;
  }

  merge(other: HistogramData): void {
    for (let i = 0; i < SIZE; i++) this.counts[i]! += other.counts[i] ?? 0;
    this.count += other.count;
    this.sumUs += other.sumUs;
    if (other.maxUs > this.maxUs) this.maxUs = other.maxUs;
  }

  /** `p` in 0..100; NaN when empty. Never above the exact maximum. */
  percentile(p: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(upperEdgeUs(i), this.maxUs);
    }
    return this.maxUs;
  }

  toData(): HistogramData {
    return { counts: this.counts, count: this.count, maxUs: this.maxUs, sumUs: this.sumUs };
  }
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'n/a';
  const abs = Math.abs(bytes);
  if (abs >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  if (abs >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${Math.round(bytes)} B`;
}

/** Microseconds as "850 µs" or "12.3 ms". */
export function formatUs(us: number): string {
  if (!Number.isFinite(us)) return 'n/a';
  if (us >= 1000) return `${(us / 1000).toFixed(us >= 100_000 ? 0 : 2)} ms`;
  return `${us.toFixed(us >= 100 ? 0 : 1)} µs`;
}

export function formatCount(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a';
}

/** A Markdown table, each column as wide as its widest cell. */
export function markdownTable(header: readonly string[], body: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
