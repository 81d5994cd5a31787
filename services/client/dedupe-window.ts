/**
 * The last `capacity` event ids seen, to drop repeats. Delivery is at least
 * once (a replay may overlap what arrived live; a retried publish is delivered
 * again), so the client remembers ids rather than trusting order: ids from two
 * publishers need not arrive sorted. Memory stays bounded: the oldest id is
 * forgotten when a new one comes in.
 */
export class DedupeWindow {
  private readonly seen = new Set<string>();
  private readonly ring: string[] = [];
  private oldest = 0;

  constructor(readonly capacity = 1000) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`dedupe window must be a positive integer, got ${capacity}`);
  }

  /** Records `id`; false when it is one of the last `capacity` ids already seen. */
  admit(id: string): boolean {
    if (this.seen.has(id)) return false;
    if (this.ring.length < this.capacity) {
      this.ring.push(id);
    } else {
      this.seen.delete(this.ring[this.oldest]!);
      this.ring[this.oldest] = id;
      this.oldest = (this.oldest + 1) % this.capacity;
    }
    this.seen.add(id);
    return true;
  }

  has(id: string): boolean {
    return this.seen.has(id);
  }

  get size(): number {
    return this.seen.size;
  }
}
