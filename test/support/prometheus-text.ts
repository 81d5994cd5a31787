/**
 * A strict-enough reader of the Prometheus text exposition format 0.0.4 for
 * tests: every sample must belong to a family announced by `# HELP` and `# TYPE`
 * (histogram samples by their `_bucket`, `_sum` and `_count` suffixes).
 */
export interface Scrape {
  readonly contentType: string | null;
  readonly text: string;
  /** family name → declared type */
  readonly types: ReadonlyMap<string, string>;
  /** `name` or `name{label="value"}` exactly as written → value */
  readonly samples: ReadonlyMap<string, number>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/;

export async function scrape(baseUrl: string): Promise<Scrape> {
  const response = await fetch(new URL('/metrics', baseUrl));
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
  const text = await response.text();
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const comment = /^# (HELP|TYPE) (\S+) (.+)$/.exec(line);
    if (comment) {
      if (comment[1] === 'HELP') helped.add(comment[2]!);
      else types.set(comment[2]!, comment[3]!);
      continue;
    }
    const sample = SAMPLE.exec(line);
    if (!sample) throw new Error(`not a Prometheus sample line: ${line}`);
    const name = sample[1]!;
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    if (!types.has(family) || !helped.has(family)) throw new Error(`sample ${name} has no # HELP and # TYPE`);
    const value = Number(sample[3]);
    if (Number.isNaN(value)) throw new Error(`sample ${name} has no numeric value: ${line}`);
    samples.set(name + (sample[2] ?? ''), value);
  }
  return { contentType: response.headers.get('content-type'), text, types, samples };
}

/** The value of one sample, e.g. `value(s, 'herald_refusals_total{code="json_invalid"}')`; 0 when absent (a counter never incremented). */
export function value(scraped: Scrape, key: string): number {
  return scraped.samples.get(key) ?? 0;
}

/**
 * One sample of the `/metrics` at `baseUrl` (a node), named exactly as
 * exposed: `herald_connections` or `herald_refusals_total{code="json_invalid"}`.
 * A labelled sample of a counter family that has none yet is 0; any other absent name throws.
 */
export async function metricOf(baseUrl: string, name: string): Promise<number> {
  const scraped = await scrape(baseUrl);
  const sample = scraped.samples.get(name);
  if (sample !== undefined) return sample;
  const family = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{/.exec(name)?.[1];
  if (family !== undefined && scraped.types.get(family) === 'counter') return 0;
  throw new Error(`metric ${name} not found in ${baseUrl}/metrics`);
}
